"""Assembles the intfa wheel (PEP 427) from the Python package and the shared library.

Written out by hand so that building it needs nothing beyond the standard library.
"""
import argparse
import base64
import hashlib
import os
import re
import subprocess
import tempfile
import zipfile

TAG = "py3-none-manylinux_2_36_x86_64"


def record_line(name, data):
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--library", required=True)
    parser.add_argument("--package", required=True)
    parser.add_argument("--output", required=True)
    args = parser.parse_args()

    source = open(os.path.join(args.package, "__init__.py")).read()
    version = re.search(r'^__version__ = "([^"]+)"', source, re.M).group(1)
    dist_info = f"intfa-{version}.dist-info"
    files = {}
    for directory, _, names in os.walk(args.package):
        for name in sorted(names):
            if name.endswith(".py"):
                path = os.path.join(directory, name)
                files[os.path.relpath(path, os.path.dirname(args.package))] = open(path, "rb").read()
    with tempfile.TemporaryDirectory() as scratch:
        stripped = os.path.join(scratch, "libintfa.so")
        subprocess.run(["strip", "-o", stripped, args.library], check=True)
        files["intfa/libintfa.so"] = open(stripped, "rb").read()
    readme = (
        "FlashAttention forward with 8-bit integer arithmetic (INT-FlashAttention and beyond): "
        "`intfa.attention(q, k, v)` on torch CUDA tensors (NVIDIA GPUs, kernels compiled at run "
        "time; needs the CUDA driver and NVRTC, e.g. `pip install nvidia-cuda-nvrtc`) or on "
        "numpy arrays (CPU).\n")
    files[f"{dist_info}/METADATA"] = (
        "Metadata-Version: 2.1\nName: intfa\n"
        f"Version: {version}\nSummary: INT8 FlashAttention for PyTorch and numpy (GPU and CPU)\n"
        "Requires-Python: >=3.9\nRequires-Dist: numpy\nDescription-Content-Type: text/markdown\n\n" + readme).encode()
    files[f"{dist_info}/WHEEL"] = (
        f"Wheel-Version: 1.0\nGenerator: intfa make_wheel.py\nRoot-Is-Purelib: false\nTag: {TAG}\n").encode()
    files[f"{dist_info}/top_level.txt"] = b"intfa\n"
    record = [record_line(name, data) for name, data in files.items()] + [f"{dist_info}/RECORD,,"]
    files[f"{dist_info}/RECORD"] = ("\n".join(record) + "\n").encode()

    os.makedirs(args.output, exist_ok=True)
    wheel = os.path.join(args.output, f"intfa-{version}-{TAG}.whl")
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            info = zipfile.ZipInfo(name, date_time=(2026, 1, 1, 0, 0, 0))
            info.external_attr = (0o755 if name.endswith(".so") else 0o644) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, data)
    print(wheel)


if __name__ == "__main__":
    main()
