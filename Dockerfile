# One image for every OMS process: `oms api`, `oms worker [--queues ...]`,
# `oms codec-server`, and the one-shot `oms migrate` and `oms seed`.
#
#   docker build -t oms .
#   docker run --env-file oms.env oms worker --queues payments
#
# The embedded servers of `oms dev` (about 270 MB) are left out: in
# containers PostgreSQL and Temporal are services of their own.

FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY models models
COPY workflows workflows
COPY activities activities
COPY api api
COPY workers workers
COPY db db
# Wheels of the project and everything it needs; the final stage installs
# them with no compiler, no build tools and no network.
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    OMS_API_HOST=0.0.0.0
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index /wheels/*.whl \
    && useradd --system --uid 10001 --home-dir /var/lib/oms --create-home oms
USER 10001:10001
WORKDIR /var/lib/oms
EXPOSE 8000 8234
ENTRYPOINT ["oms"]
CMD ["api"]
