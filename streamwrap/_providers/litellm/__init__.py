"""``litellm_chat``: LiteLLM's providers, read through OpenAI's usage mapping.

``_wrapper`` (the wrapper), ``_chunks`` (LiteLLM's chunk and response objects → deltas),
``_exceptions`` (LiteLLM's exceptions → streamwrap's errors), ``_library`` (importing
LiteLLM, and keeping it off the network). Nothing is imported here, so that the registry's
import string imports only what it names."""
