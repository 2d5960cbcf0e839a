# The project's image. docker-compose.yml runs the user code server, the webserver, the daemon and every run's
# container from it; the Helm chart (deploy/helm/values.yaml) runs the user-code deployment and every run's pod from it.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    DAGSTER_HOME=/opt/dagster/home \
    ANALYTICS_DATA_DIR=/opt/dagster/data

WORKDIR /opt/dagster/app
COPY pyproject.toml README.md ./
COPY analytics_pipeline ./analytics_pipeline
# The project, and the run launchers' libraries: dagster-docker (docker-compose) and dagster-k8s (the Helm chart's run
# pods). Libraries 0.29.N go with dagster 1.13.N and pin it, so this also pins the image's Dagster release (the Helm
# chart's --version in the README is the same 1.13.N).
RUN pip install --no-cache-dir . "dagster-docker==0.29.27" "dagster-k8s==0.29.27"

# docker-compose's instance; the Helm chart mounts its own instance and sets its own DAGSTER_HOME.
COPY deploy/dagster.docker.yaml /opt/dagster/home/dagster.yaml
COPY deploy/workspace.docker.yaml /opt/dagster/app/workspace.docker.yaml
RUN mkdir -p /opt/dagster/data/uploads /opt/dagster/data/archive /opt/dagster/data/quarantine /opt/dagster/data/reports

# 4000: the user code gRPC server (docker-compose's user_code, the chart's deployment port); 3000: the webserver.
EXPOSE 3000 4000
CMD ["dagster", "code-server", "start", "-h", "0.0.0.0", "-p", "4000", "-m", "analytics_pipeline.definitions"]
