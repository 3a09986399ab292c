"""The sans-I/O decoders, the wire mappers' properties and the connection pools."""
