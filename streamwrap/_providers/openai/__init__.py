"""``openai_chat`` (``_wrapper``, ``_wire``) and ``zhipuai_chat`` (``_zhipuai``), which is
the same wrapper with ZhipuAI's endpoint and key; ``_stream_options`` asks for usage (and
is shared with ``litellm_chat``); ``openai_responses`` (``_responses_wrapper``,
``_responses_wire``, ``_responses_input``), the Responses API through the same client.
Nothing is imported here, so that the registry's import strings import only what they
name."""
