"""``litellm_chat`` (``_wrapper``): LiteLLM's providers, read through OpenAI's usage mapping.
Nothing is imported here, so that the registry's import string imports only what it names."""
