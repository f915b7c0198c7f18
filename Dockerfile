FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY crm_ingest ./crm_ingest
RUN pip install --no-cache-dir . && useradd --create-home crm
USER crm
WORKDIR /home/crm
CMD ["ingest", "--help"]
