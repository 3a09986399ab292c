"""The built-in providers, one package each: its wrapper, and the wire mapper that turns
its stream into deltas. Beside them, ``_default_model``: the model the ``streamwrap``
command picks when told none, the one module here that names several providers.

The core reaches a provider only through the registry's import strings
(``streamwrap._registry``), and so do the wrapper classes the root package exports
(``streamwrap.OpenAIChatWrapper`` and the others, imported when first named): ``import
streamwrap`` imports none of them, and no provider SDK, which each wrapper imports when it
builds its client. Nothing is imported here.
"""
