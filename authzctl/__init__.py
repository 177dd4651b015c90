"""`authzctl`: a small command line client of the Zentra Cards gRPC API, for operators and for
trying the service by hand. One subcommand per RPC; human-readable lines by default, the
response message as JSON with `--json`. The bearer secret comes from `--token` or
AUTHZ_TOKEN and is never printed; an API key secret is printed once, by `create-key`."""
