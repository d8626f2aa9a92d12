# clusterdns as a container: `docker build -t clusterdns .`
#
# Runs as an unprivileged user. Port 53 then needs either the sysctl
# net.ipv4.ip_unprivileged_port_start=53 (deploy/kubernetes sets it on the Pod;
# `docker run --sysctl net.ipv4.ip_unprivileged_port_start=53 ...`) or a Corefile on a
# high port. The Corefile is read from /etc/coredns/Corefile, where the clusterdns
# ConfigMap is mounted, as CoreDNS reads its own.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install . && rm -rf /src

RUN groupadd --gid 10001 clusterdns \
    && useradd --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin clusterdns
USER 10001:10001
WORKDIR /

EXPOSE 53/udp 53/tcp 8080/tcp 8181/tcp 9153/tcp
ENTRYPOINT ["clusterdns"]
CMD ["serve", "--conf", "/etc/coredns/Corefile"]
