"""gRPC servicers: thin handlers that authenticate, validate, call the domain and convert."""
