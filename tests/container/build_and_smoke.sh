#!/usr/bin/env bash
# Build the repository's Dockerfile, unchanged, with buildah (no Docker daemon, no Docker Hub) and
# run the demo chain inside the image on a bind-mounted folder, offline.
#
#   bash tests/container/build_and_smoke.sh            # as root; ~15-20 min the first time on 2 cores
#
# 1. The base image: when `docker.io/library/debian:bookworm-slim` (what `FROM debian:bookworm-slim`
#    resolves to) is not in local storage, make a stand-in: `debootstrap --variant=minbase bookworm`,
#    trimmed like the slim image, imported under exactly that name and labelled
#    org.dcequant.base.stand-in=debootstrap so that images built on it are recognisable.
# 2. The build: `buildah bud --isolation chroot --format docker --pull=never --force-rm` with the CPU
#    torch wheel (`pip download torch==$TORCH_VERSION --no-deps` on this host finds it) passed through
#    the documented build argument TORCH_WHEEL and a build-time mount; the host's CA bundle (the
#    HTTPS proxy's CA) is mounted at build time only and named by the PIP_CERT build argument.  The script fails when the
#    wheel it finds is not the CPU build, and the Dockerfile fails when the wheel is missing or the
#    installed torch is not the CPU build.
# 3. The smoke run (offline, `unshare -n`): `dcequant --version`, then dcequant-simulate (DICOM) ->
#    dcequant-convert -> dcequant participant -> dcequant group on a bind-mounted folder, as the image's
#    non-root user; the outputs are checked by tests/derivative_checks.py.
#
# Environment: IMAGE (tag to build) [localhost/dcequant:smoke], TORCH_VERSION [2.13.0],
# KEEP_IMAGE=1 keeps the image afterwards (default: removed), ARCHIVE=FILE also exports it as a
# docker-archive (what `apptainer build dcequant.sif docker-archive://FILE` converts).
# Timings are printed as "timing: <step> <seconds> s".
set -euo pipefail

REPO=$(cd "$(dirname "$0")/../.." && pwd)
BASE=docker.io/library/debian:bookworm-slim
IMAGE=${IMAGE:-localhost/dcequant:smoke}
TORCH_VERSION=${TORCH_VERSION:-2.13.0}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/dcequant-container.XXXXXX")
CTR=
trap 'status=$?; [ -n "$CTR" ] && buildah rm "$CTR" >/dev/null 2>&1; rm -rf "$WORK"; exit $status' EXIT

fail() { echo "build_and_smoke: error: $*" >&2; exit 1; }
now() { date +%s.%N; }
timing() { python3 -c "import sys; print(f'timing: {sys.argv[1]} {float(sys.argv[3]) - float(sys.argv[2]):.1f} s')" "$@"; }

[ "$(id -u)" = 0 ] || fail "run as root (buildah chroot isolation and debootstrap need it)"
if ! command -v buildah >/dev/null || ! command -v debootstrap >/dev/null; then
    echo "installing buildah and debootstrap with apt-get"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq buildah debootstrap >/dev/null
fi

make_base() {
    local t0 rootfs ctr
    t0=$(now)
    rootfs="$WORK/rootfs"
    echo "making a stand-in for $BASE with debootstrap (minbase bookworm)"
    debootstrap --variant=minbase bookworm "$rootfs" http://deb.debian.org/debian >"$WORK/debootstrap.log" 2>&1 \
        || { tail -20 "$WORK/debootstrap.log"; fail "debootstrap failed"; }
    # the slim image's trimming: no documentation, man pages or locales, now or in later installs
    cat >"$rootfs/etc/dpkg/dpkg.cfg.d/docker-slim" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
EOF
    find "$rootfs/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
    rm -rf "$rootfs"/usr/share/{man,groff,info,lintian,linda,locale}/* "$rootfs"/var/cache/apt/*.bin \
        "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/log/*.log
    tar -C "$rootfs" -cf "$WORK/rootfs.tar" .
    ctr=$(buildah from scratch)
    buildah add "$ctr" "$WORK/rootfs.tar" / >/dev/null
    buildah config --cmd bash --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        --label org.dcequant.base.stand-in="debootstrap minbase bookworm, made by tests/container/build_and_smoke.sh" \
        "$ctr"
    buildah commit --rm "$ctr" "$BASE" >/dev/null
    rm -rf "$rootfs" "$WORK/rootfs.tar"
    timing base-image "$t0" "$(now)"
}

if buildah inspect --type image "$BASE" >/dev/null 2>&1; then
    echo "base image $BASE: present ($(buildah inspect --type image --format \
        '{{index .ImageAnnotations "org.dcequant.base.stand-in"}}{{index .Docker.Config.Labels "org.dcequant.base.stand-in"}}' "$BASE"))"
else
    make_base
fi

# the CPU torch wheel for the smoke build
WHEELS="$WORK/wheels"
pip download -q "torch==$TORCH_VERSION" --no-deps -d "$WHEELS" >/dev/null 2>&1 || fail "pip download torch==$TORCH_VERSION failed"
WHEEL=$(basename "$(ls "$WHEELS"/torch-*.whl)")
case "$WHEEL" in
    *+cpu*) echo "torch wheel for the smoke build: $WHEEL" ;;
    *) fail "pip found $WHEEL, not a CPU build of torch $TORCH_VERSION: the smoke build would pull CUDA torch (~2.8 GB)" ;;
esac

# build-time files, mounted on the base image's empty /mnt (a missing mount point would be left in
# the image): the wheel, and the host's CA bundle for pip (HTTPS to the package registries goes
# through a proxy whose CA the image does not trust), named through pip's PIP_CERT build argument.
BUILD_MNT="$WORK/mnt"
mkdir -p "$BUILD_MNT"
ln "$WHEELS/$WHEEL" "$BUILD_MNT/$WHEEL" 2>/dev/null || cp "$WHEELS/$WHEEL" "$BUILD_MNT/$WHEEL"
BUILD_ARGS=(--build-arg "TORCH_WHEEL=/mnt/$WHEEL")
HOST_CA=${PIP_CERT:-${SSL_CERT_FILE:-$(python3 -c "import ssl; print(ssl.get_default_verify_paths().openssl_cafile)")}}
if [ -f "$HOST_CA" ]; then
    cp "$HOST_CA" "$BUILD_MNT/ca-certificates.crt"
    BUILD_ARGS+=(--build-arg PIP_CERT=/mnt/ca-certificates.crt)
fi

t0=$(now)
buildah bud --isolation chroot --format docker --pull=never --force-rm --layers \
    -v "$BUILD_MNT:/mnt:ro" "${BUILD_ARGS[@]}" -t "$IMAGE" -f "$REPO/Dockerfile" "$REPO" \
    >"$WORK/build.log" 2>&1 || { tail -40 "$WORK/build.log"; fail "buildah bud failed (log above)"; }
timing build "$t0" "$(now)"
grep -E "^torch .*CUDA build" "$WORK/build.log" || true
SIZE=$(buildah images --format '{{.Size}}' "$IMAGE" | head -1)
echo "image: $IMAGE, size $SIZE"

# nothing used only for building may be left in the image
CTR=$(buildah from --pull-never "$IMAGE")
MNT=$(buildah mount "$CTR")
[ -z "$(ls -A "$MNT/mnt")" ] || fail "build-time files were left in the image's /mnt: $(ls -A "$MNT/mnt")"
for leftover in wheels src etc/pip.conf; do
    [ ! -e "$MNT/$leftover" ] || fail "/$leftover was left in the image"
done
buildah umount "$CTR" >/dev/null

ENTRYPOINT=$(buildah inspect --type image --format '{{range .Docker.Config.Entrypoint}}{{.}} {{end}}' "$IMAGE")
[ "$ENTRYPOINT" = "dcequant " ] || fail "ENTRYPOINT is '$ENTRYPOINT', expected [\"dcequant\"]"
USER_NAME=$(buildah inspect --type image --format '{{.Docker.Config.User}}' "$IMAGE")
case "${USER_NAME%%:*}" in ""|root|0) fail "the image runs as '$USER_NAME', expected a non-root user" ;; esac

DATA="$WORK/data"
mkdir -p "$DATA"
chown 1000:1000 "$DATA"
# buildah run ignores ENTRYPOINT: prepend it; unshare -n: no network at run time
run() { unshare -n buildah run --isolation chroot -v "$DATA:/data" "$CTR" -- "$@"; }
t0=$(now)
VERSION=$(run $ENTRYPOINT --version)
echo "$VERSION"
[ "$VERSION" = "dcequant $(python3 -c "exec(open('$REPO/bidsapp/_version.py').read()); print(__version__)")" ] \
    || fail "'dcequant --version' printed '$VERSION'"
run dcequant-simulate /data/bids --format dicom --subjects 2 --matrix 24,24,3 --quiet
for sub in 01 02; do
    run dcequant-convert "/data/bids/sourcedata/dicom/sub-$sub" /data/bids --participant-label "$sub"
done
run $ENTRYPOINT /data/bids /data/out participant -w /data/work --nprocs 2
run $ENTRYPOINT /data/bids /data/out group --roi /data/bids/derivatives/truth
timing smoke-run "$t0" "$(now)"
PYTHONPATH="$REPO" python3 "$REPO/tests/derivative_checks.py" "$DATA/out" 01 02

if [ -n "${ARCHIVE:-}" ]; then
    t0=$(now)
    buildah push -q "$IMAGE" "docker-archive:$ARCHIVE:dcequant/dcequant:smoke"
    timing docker-archive "$t0" "$(now)"
fi
buildah rm "$CTR" >/dev/null
CTR=
[ "${KEEP_IMAGE:-0}" = 1 ] || buildah rmi "$IMAGE" >/dev/null
echo "build_and_smoke: OK"
