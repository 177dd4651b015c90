# The application image: authz-server, ledger-writer and authzctl on Python 3.11.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY authz_server authz_server
COPY ledger_writer ledger_writer
COPY authzctl authzctl
COPY devstack devstack
COPY zentra zentra
RUN pip install --no-cache-dir .
USER nobody
ENV AUTHZ_LISTEN_ADDR=0.0.0.0:50051 AUTHZ_METRICS_ADDR=0.0.0.0
EXPOSE 50051 9464
CMD ["authz-server"]
