"""What the tests share: the recordings table, a uvicorn server, a local package index."""
