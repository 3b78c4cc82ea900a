"""What every app shares and that knows no app: bearer auth, the error shape, reading the
environment, logging, metrics helpers, the HTTP limits, the embedded PostgreSQL."""
