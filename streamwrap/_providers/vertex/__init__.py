"""``vertex_gemini_chat``: Gemini on Google Cloud's Vertex AI. The wrapper (``_wrapper``) and
its credentials (``_auth``); the request body and the wire are the Gemini API's, read by
``gemini``'s builder and mapper. Nothing is imported here, so that the registry's import
string imports only what it names."""
