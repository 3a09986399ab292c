"""The built-in providers, one package each: its wrapper, and the wire mapper that turns
its stream into deltas. Beside them, ``_default_model``: the model the ``streamwrap``
command picks when told none, the one module here that names several providers.

The core reaches a provider only through the registry's import strings
(``streamwrap._registry``), so ``import streamwrap`` imports none of them but the OpenAI
wrapper, which ``streamwrap.OpenAIChatWrapper`` names; and no provider SDK, which each
wrapper imports when it builds its client. Nothing is imported here.
"""
