# dcequant BIDS App image: Debian bookworm (slim) + Debian's Python 3.11 in a virtual environment.
#
#   docker build -t dcequant/dcequant:0.1.0 .                      # CUDA torch (default; --gpus all works)
#   docker run --rm -v /data/bids:/data:ro -v /data/out:/out dcequant/dcequant:0.1.0 /data /out participant
#
# Build arguments:
#   TORCH_VERSION  torch release installed from PyPI (its Linux wheel is the CUDA build) [2.13.0]
#   TORCH_WHEEL    path *inside the build* of a torch wheel to install instead (e.g. the CPU build),
#                  mounted at build time (buildah bud -v DIR:/mnt:ro); the build fails when it is
#                  set but missing, or when the installed torch is not the CPU build it names.
#   PIP_CERT       CA bundle for pip, mounted at build time, where HTTPS goes through a proxy with its
#                  own CA (pip's own environment variable; unset: pip's default CAs).
# Mount build-time files on /mnt, which the base image has (empty): a mount on a missing path leaves
# an empty mount point in every layer built with it. tests/container/build_and_smoke.sh does so, and
# checks that nothing used only for building (CA bundle, wheels, sources) stays in the image.

FROM debian:bookworm-slim AS build
ARG TORCH_VERSION=2.13.0
ARG TORCH_WHEEL=
ARG PIP_CERT
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv \
 && rm -rf /var/lib/apt/lists/*
RUN python3 -m venv /opt/dcequant
ENV PATH=/opt/dcequant/bin:$PATH
# hadolint ignore=DL3013
RUN set -e; \
    if [ -n "$TORCH_WHEEL" ]; then \
      if [ ! -f "$TORCH_WHEEL" ]; then \
        echo "error: TORCH_WHEEL=$TORCH_WHEEL is not in the build (mount its folder with -v); refusing to fall back to PyPI's CUDA torch" >&2; \
        exit 1; \
      fi; \
      pip install "$TORCH_WHEEL"; \
    else \
      pip install "torch==$TORCH_VERSION"; \
    fi
# the dependencies first, in their own layer: a change of the sources alone reuses it
COPY pyproject.toml /src/
RUN python -c 'import tomllib; print("\n".join(tomllib.load(open("/src/pyproject.toml", "rb"))["project"]["dependencies"]))' \
      > /tmp/requirements.txt \
 && pip install -r /tmp/requirements.txt \
 && rm /tmp/requirements.txt
COPY README.md /src/
COPY bidsapp /src/bidsapp
COPY workflows /src/workflows
RUN pip install --no-deps /src \
 && pip check \
 && python -c 'import os, torch; \
wheel = os.environ.get("TORCH_WHEEL", ""); \
print(f"torch {torch.__version__}, CUDA build {torch.version.cuda}"); \
bad = (torch.version.cuda is not None) if "+cpu" in wheel else (not wheel and torch.version.cuda is None); \
raise SystemExit(f"error: torch {torch.__version__} is not the build asked for (TORCH_WHEEL={wheel!r})" if bad else 0)'
# C++ headers are only needed to compile torch extensions
RUN rm -rf /opt/dcequant/lib/python3.11/site-packages/torch/include

FROM debian:bookworm-slim
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="dcequant" \
      org.opencontainers.image.description="BIDS App for DCE-MRI: T1 mapping, concentration, AIF, kinetic model fits, reports and group statistics as BIDS derivatives" \
      org.opencontainers.image.version="$VERSION" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="docker.io/library/debian:bookworm-slim" \
      org.opencontainers.image.documentation="README.md (section Containers) and docs/hpc.md of the dcequant sources"
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --create-home --uid 1000 --shell /usr/sbin/nologin dcequant
COPY --from=build /opt/dcequant /opt/dcequant
ENV PATH=/opt/dcequant/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    MPLCONFIGDIR=/tmp/matplotlib \
    DENO_DIR=/tmp/deno \
    OMP_NUM_THREADS=1
USER 1000:1000
WORKDIR /home/dcequant
ENTRYPOINT ["dcequant"]
CMD ["--help"]
