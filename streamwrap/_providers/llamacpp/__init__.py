"""llama.cpp in-process (``local_chat``): the wrapper, the engine (xllamacpp), its wire
mapping, the worker-thread feed and where model files come from."""
