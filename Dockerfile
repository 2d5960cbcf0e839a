# The project's image: user code server, webserver and daemon all run from it (docker-compose.yml, Helm chart).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    DAGSTER_HOME=/opt/dagster/home \
    ANALYTICS_DATA_DIR=/opt/dagster/data

WORKDIR /opt/dagster/app
COPY pyproject.toml README.md ./
COPY analytics_pipeline ./analytics_pipeline
RUN pip install --no-cache-dir .

COPY dagster.yaml /opt/dagster/home/dagster.yaml
COPY deploy/workspace.docker.yaml /opt/dagster/app/workspace.docker.yaml
RUN mkdir -p /opt/dagster/data/uploads /opt/dagster/data/archive /opt/dagster/data/quarantine /opt/dagster/data/reports

EXPOSE 3000 4000
CMD ["dagster", "code-server", "start", "-h", "0.0.0.0", "-p", "4000", "-m", "analytics_pipeline.definitions"]
