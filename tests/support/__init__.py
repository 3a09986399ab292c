"""What the tests share: the table of model types and ``make_model`` (``providers``), the
fault list (``faults``), the recordings table and loader (``recordings``), a uvicorn server
(``server``), a local package index (``package_index``) and the embedded model's tool
template (``smollm2``)."""
