"""The cloud's pretrained language model: evidence from the teacher's per-token outputs
(`evidence`), a local GGUF file or Hugging Face folder loaded offline (`load`), the one-sentence
answerer and its LoRA adapter (`answerer`, `tune`, `answer_data`), and the grounding check
(`grounding`). Guide: docs/lm.md."""
