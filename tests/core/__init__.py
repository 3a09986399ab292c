"""The response contract (DESIGN.md), configs and the public surface, through openai_chat."""
