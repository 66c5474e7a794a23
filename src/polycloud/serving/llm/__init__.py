"""polycloud's built-in LLM runtime: a small generative language model served through the OpenAI API.

`lm` holds the model (a word-level trigram model trained from text, `python -m
polycloud.serving.llm.training`), `api` the OpenAI-compatible routes with streamed tokens.
"""
