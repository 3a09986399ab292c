"""``anthropic_chat``: the wrapper (``_wrapper``), its wire mapper (``_wire``) and the request
body (``_request``). Nothing is imported here, so that the registry's import string imports
only what it names."""
