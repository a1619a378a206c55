"""Generated protobuf/gRPC modules; never edit by hand."""
