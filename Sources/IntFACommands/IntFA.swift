import IntFlashAttention
public enum IntFA { public static func main() { print(AttentionMethod.allCases) } }
