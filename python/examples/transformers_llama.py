"""A small randomly initialised Llama-style model (no downloads) run with SDPA and with intfa:
logits and last hidden states compared (cosine similarity, max |difference|)."""
import json
import sys

import torch
from transformers import LlamaConfig, LlamaForCausalLM

import intfa.integrations.transformers as intfa_transformers


def main():
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=4096, hidden_size=1024, intermediate_size=2816, num_hidden_layers=4,
                         num_attention_heads=16, num_key_value_heads=4, max_position_embeddings=4096)
    model = LlamaForCausalLM(config).to(device="cuda", dtype=torch.float16).eval()
    ids = torch.randint(0, config.vocab_size, (2, 1024), device="cuda")
    name = intfa_transformers.register()
    results = {}
    for implementation in ("sdpa", name):
        model.set_attn_implementation(implementation)
        with torch.no_grad():
            output = model(ids, output_hidden_states=True)
        results[implementation] = (output.logits.float(), output.hidden_states[-1].float())
    report = {}
    for index, label in enumerate(("logits", "hidden_states")):
        a, b = results["sdpa"][index], results[name][index]
        cosine = torch.nn.functional.cosine_similarity(a.flatten(), b.flatten(), dim=0).item()
        report[label] = dict(cosine=cosine, max_abs=(a - b).abs().max().item(), max_abs_reference=a.abs().max().item())
    top1 = (results["sdpa"][0].argmax(-1) == results[name][0].argmax(-1)).float().mean().item()
    report["top1_agreement"] = top1
    print(json.dumps(report, indent=1))
    return 0 if report["logits"]["cosine"] > 0.99 else 1


if __name__ == "__main__":
    sys.exit(main())
