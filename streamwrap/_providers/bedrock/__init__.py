"""``bedrock_chat``: Amazon Bedrock's ConverseStream API, and Anthropic's Messages format
through InvokeModelWithResponseStream. The wrapper (``_wrapper``), ConverseStream's wire
mapper (``_wire``), the invoke API's body and mapper (``_invoke``), the errors of both
(``_errors``), Converse's request body (``_request``) and the credentials and signing
(``_auth``). Nothing is imported here, so that the registry's import string imports only
what it names."""
