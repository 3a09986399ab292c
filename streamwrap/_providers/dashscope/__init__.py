"""``dashscope_chat``: the wrapper (``_wrapper``) and its wire mapper (``_wire``). Nothing is
imported here, so that the registry's import string imports only what it names."""
