# The linewarden collector as a container image.
#   docker build -t linewarden-collector .
#   docker run -v /srv/linewarden/etc:/etc/linewarden:ro -v /srv/linewarden/data:/var/lib/linewarden \
#     -p 8470:8470 linewarden-collector
# /etc/linewarden/collector.toml must set [api] host = "0.0.0.0" to be reachable from outside the container,
# and keep data_dir under /var/lib/linewarden (the volume). /metrics, /healthz and /readyz are on the API port.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY linewarden linewarden
COPY agent agent
COPY collector collector
COPY simulators simulators
RUN pip wheel --no-cache-dir --wheel-dir /wheels ".[collector,postgres]"

FROM python:3.11-slim
RUN useradd --system --home /var/lib/linewarden --shell /usr/sbin/nologin linewarden \
 && install -d -o linewarden -g linewarden /var/lib/linewarden /etc/linewarden
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links /wheels "linewarden[collector,postgres]" && rm -rf /wheels
COPY --chown=linewarden:linewarden config/collector.toml /etc/linewarden/collector.toml
COPY --chown=linewarden:linewarden config/contracts /etc/linewarden/contracts
COPY --chown=linewarden:linewarden config/calendars /etc/linewarden/calendars
USER linewarden
WORKDIR /var/lib/linewarden
VOLUME ["/var/lib/linewarden"]
EXPOSE 8470
ENV PYTHONUNBUFFERED=1
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s \
  CMD python -c "import urllib.request, sys; urllib.request.urlopen('http://127.0.0.1:8470/healthz', timeout=4)" || exit 1
STOPSIGNAL SIGTERM
ENTRYPOINT ["linewarden", "collector"]
CMD ["run", "--config", "/etc/linewarden/collector.toml", "--log-format", "json"]
