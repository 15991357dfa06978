#!/usr/bin/env python3
"""Static checks of deploy/ (no Docker engine, no cluster needed).

  check_deploy.py --root DIR --exported METRICS.txt [--mysync BIN]

  compose    deploy/docker-compose.yml parses; the services are there; every depends_on,
             bind-mounted file, build context and Dockerfile exists; MySQL has binlog ROW,
             row metadata FULL and GTID on; MongoDB is a replica set and mysync's URI names it;
             Prometheus scrapes mysync's service and port; Grafana's datasource is Prometheus.
  dockerfile every stage is bookworm-slim; the final stage runs as a non-root USER; COPY
             --from names a stage; every COPY source exists.
  k8s        every manifest parses; one replica with Recreate; probes on /sync/health through
             a declared port; the Secret and ConfigMap references resolve; the Service selects
             the pods; the ServiceMonitor selects the Service and names its port; the
             ConfigMap's mysync.yaml passes `mysync --check-config` (with --mysync).
  metrics    every metric name (and label matcher) in deploy/prometheus/alerts.yml and
             deploy/grafana/mysync.json is one the daemon exports (METRICS.txt: the daemon's
             /metrics text, from tests/support/metrics_export or a live daemon).

Prints one line per failed check and exits 1 if any failed.
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile

import yaml

failures = []


def check(cond, msg):
    if not cond:
        failures.append(msg)
    return cond


# ---- metrics ------------------------------------------------------------------------------

def exported_families(path):
    """{metric name: set of label names} from Prometheus text (histograms: _bucket/_sum/_count
    too)."""
    fams, types = {}, {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            m = re.match(r"# TYPE (\S+) (\S+)", line)
            if m:
                types[m.group(1)] = m.group(2)
                fams.setdefault(m.group(1), set())
                if m.group(2) == "histogram":
                    for sfx in ("_bucket", "_sum", "_count"):
                        fams.setdefault(m.group(1) + sfx, set())
                continue
            if not line or line.startswith("#"):
                continue
            m = re.match(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})?\s", line)
            if m:
                labels = set(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="', m.group(3) or ""))
                fams.setdefault(m.group(1), set()).update(labels)
    return fams


# labels Prometheus adds (target labels) or PromQL functions produce
TARGET_LABELS = {"instance", "job", "le", "__name__"}
PROMQL_WORDS = {
    "sum", "by", "without", "rate", "increase", "irate", "time", "histogram_quantile", "max",
    "min", "avg", "count", "and", "or", "unless", "on", "ignoring", "group_left", "group_right",
    "bool", "offset", "label_values", "abs", "delta", "deriv", "vector", "scalar", "topk",
    "bottomk", "clamp_min", "clamp_max", "changes", "resets", "up", "e", "inf", "nan",
}


def check_expr(expr, where, fams):
    """Every metric selector in expr is exported, with labels it has."""
    # drop string literals and Grafana's $variables, keep selectors
    body = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    # Grafana's label_values(metric, label): the second argument is a label of the metric
    lv = re.fullmatch(r"\s*label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*,\s*([a-zA-Z_]+)\s*\)\s*", body)
    if lv:
        if check(lv.group(1) in fams, f"{where}: metric {lv.group(1)} is not exported by the daemon"):
            check(lv.group(2) in fams[lv.group(1)] | TARGET_LABELS,
                  f"{where}: {lv.group(1)} has no label {lv.group(2)}")
        return {lv.group(1)}
    body = re.sub(r"\$\{?[a-zA-Z_]+\}?", "1", body)
    used = set()
    for m in re.finditer(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(\{[^}]*\})?", body):
        name, sel = m.group(1), m.group(2)
        end = m.end()
        rest = body[end:].lstrip()
        if name in PROMQL_WORDS or rest.startswith("("):
            continue
        if re.fullmatch(r"[0-9smhdwy]+", name):
            continue
        # labels inside by (...) / without (...) are handled below
        before = body[: m.start()].rstrip()
        if re.search(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*$", before):
            continue
        if name == "up":
            continue
        used.add(name)
        if not check(name in fams, f"{where}: metric {name} is not exported by the daemon"):
            continue
        if sel:
            for label in re.findall(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)", sel):
                check(label in fams[name] or label in TARGET_LABELS,
                      f"{where}: {name} has no label {label}")
    for grp in re.findall(r"\b(?:by|without)\s*\(([^)]*)\)", body):
        for label in [x.strip() for x in grp.split(",") if x.strip()]:
            have = set(TARGET_LABELS)
            for n in used:
                have |= fams.get(n, set())
            check(label in have, f"{where}: grouping label {label} is on none of {sorted(used)}")
    return used


def check_metrics(root, fams):
    used = set()
    with open(os.path.join(root, "deploy/prometheus/alerts.yml"), encoding="utf-8") as f:
        rules = yaml.safe_load(f)
    alerts = set()
    for g in rules["groups"]:
        for r in g["rules"]:
            alerts.add(r.get("alert"))
            used |= check_expr(str(r["expr"]), f"alerts.yml {r.get('alert')}", fams)
    for want in ("MysyncDown", "MysyncReplicationLagHigh", "MysyncNoProgress",
                 "MysyncDeadLettersRising"):
        check(want in alerts, f"alerts.yml: no {want} alert")
    with open(os.path.join(root, "deploy/grafana/mysync.json"), encoding="utf-8") as f:
        dash = json.load(f)
    for p in dash["panels"]:
        for t in p.get("targets", []):
            used |= check_expr(t["expr"], f"mysync.json panel '{p['title']}'", fams)
    for v in dash["templating"]["list"]:
        q = v.get("query")
        if isinstance(q, dict):
            used |= check_expr(q.get("query", ""), f"mysync.json variable {v['name']}", fams)
    # what the dashboard must show (the list)
    titles = " | ".join(p["title"].lower() for p in dash["panels"])
    for want in ("per table", "lag", "latency", "errors", "dead letters", "memory"):
        check(want in titles, f"mysync.json: no panel about {want}")
    return used


# ---- compose and Docker -------------------------------------------------------------------

def check_compose(root):
    deploy = os.path.join(root, "deploy")
    with open(os.path.join(deploy, "docker-compose.yml"), encoding="utf-8") as f:
        comp = yaml.safe_load(f)
    svcs = comp.get("services", {})
    for want in ("mysql", "mongo", "mysync", "prometheus", "grafana"):
        check(want in svcs, f"compose: no service {want}")
    named_volumes = set((comp.get("volumes") or {}).keys())
    for name, s in svcs.items():
        dep = s.get("depends_on", [])
        for d in (dep.keys() if isinstance(dep, dict) else dep):
            check(d in svcs, f"compose: {name} depends on unknown service {d}")
        for v in s.get("volumes", []):
            src = v.split(":")[0]
            if src.startswith(".") or src.startswith("/"):
                check(os.path.exists(os.path.join(deploy, src)),
                      f"compose: {name} mounts {src}, which does not exist")
            else:
                check(src in named_volumes, f"compose: {name} uses undeclared volume {src}")
        b = s.get("build")
        if b:
            ctx = os.path.normpath(os.path.join(deploy, b.get("context", ".")))
            check(os.path.isfile(os.path.join(ctx, b.get("dockerfile", "Dockerfile"))),
                  f"compose: {name}'s Dockerfile does not exist")
    mysql_cmd = " ".join(svcs.get("mysql", {}).get("command", []))
    check(svcs.get("mysql", {}).get("image", "").startswith("mysql:8.4"), "compose: not MySQL 8.4")
    for flag in ("--binlog-format=ROW", "--binlog-row-metadata=FULL", "--gtid-mode=ON",
                 "--enforce-gtid-consistency=ON", "--log-bin"):
        check(flag in mysql_cmd, f"compose: mysql lacks {flag}")
    mongo = svcs.get("mongo", {})
    check(mongo.get("image", "").startswith("mongo:7"), "compose: not MongoDB 7")
    check("--replSet" in mongo.get("command", []), "compose: mongo is not a replica set")
    env = svcs.get("mysync", {}).get("environment", {})
    check("replicaSet=" in env.get("MONGODB_URI", ""), "compose: MONGODB_URI names no replicaSet")
    check(env.get("MYSQL_HOST") == "mysql", "compose: mysync's MYSQL_HOST is not the mysql service")
    listen_port = env.get("HTTP_LISTEN", "127.0.0.1:8080").rsplit(":", 1)[1]
    check(bool(env.get("HTTP_TOKEN")), "compose: mysync listens beyond loopback without HTTP_TOKEN")
    # Prometheus scrapes mysync's service and port, and loads the alerts
    with open(os.path.join(deploy, "prometheus/prometheus.yml"), encoding="utf-8") as f:
        prom = yaml.safe_load(f)
    targets = [t for sc in prom["scrape_configs"] if sc["job_name"] == "mysync"
               for c in sc["static_configs"] for t in c["targets"]]
    check(f"mysync:{listen_port}" in targets, f"prometheus.yml: no target mysync:{listen_port}")
    check("alerts.yml" in prom.get("rule_files", []), "prometheus.yml: alerts.yml not loaded")
    mounts = " ".join(svcs.get("prometheus", {}).get("volumes", []))
    check("/etc/prometheus/alerts.yml" in mounts, "compose: alerts.yml not mounted next to the config")
    with open(os.path.join(deploy, "grafana/provisioning/datasources/prometheus.yml"),
              encoding="utf-8") as f:
        ds = yaml.safe_load(f)
    check(any("//prometheus:9090" in d.get("url", "") for d in ds["datasources"]),
          "grafana datasource does not point at the prometheus service")
    with open(os.path.join(deploy, "grafana/provisioning/dashboards/mysync.yml"),
              encoding="utf-8") as f:
        prov = yaml.safe_load(f)
    path = prov["providers"][0]["options"]["path"]
    gmounts = svcs.get("grafana", {}).get("volumes", [])
    check(any(v.split(":")[1].startswith(path) for v in gmounts if "mysync.json" in v),
          "compose: the dashboard is not mounted where the provisioning looks")


def check_dockerfile(root):
    path = os.path.join(root, "deploy/docker/Dockerfile")
    with open(path, encoding="utf-8") as f:
        text = re.sub(r"\\\n", " ", f.read())
    stages, last_user, final = [], None, None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        word = word.upper()
        if word == "FROM":
            parts = rest.split()
            check(parts[0] == "debian:bookworm-slim", f"Dockerfile: stage from {parts[0]}")
            stages.append(parts[2] if len(parts) > 2 and parts[1].upper() == "AS" else None)
            last_user = None
        elif word == "USER":
            last_user = rest.strip()
        elif word == "COPY":
            args = rest.split()
            frm = [a for a in args if a.startswith("--from=")]
            srcs = [a for a in args if not a.startswith("--")][:-1]
            if frm:
                check(frm[0][7:] in stages[:-1], f"Dockerfile: COPY {frm[0]}: no such stage")
            else:
                for s in srcs:
                    check(os.path.exists(os.path.join(root, s)), f"Dockerfile: COPY {s}: missing")
    final = last_user
    check(len(stages) >= 2, "Dockerfile: not multi-stage")
    check(final is not None and final.split(":")[0] not in ("root", "0"),
          "Dockerfile: the final stage does not run as a non-root USER")


# ---- Kubernetes ---------------------------------------------------------------------------

def check_k8s(root, mysync):
    kdir = os.path.join(root, "deploy/k8s")
    objs = []
    for fn in sorted(os.listdir(kdir)):
        if fn.endswith((".yaml", ".yml")):
            with open(os.path.join(kdir, fn), encoding="utf-8") as f:
                for doc in yaml.safe_load_all(f):
                    if doc:
                        check("apiVersion" in doc and "kind" in doc, f"k8s/{fn}: no apiVersion/kind")
                        objs.append(doc)
    by_kind = {}
    for o in objs:
        by_kind.setdefault(o["kind"], []).append(o)
    for want in ("Deployment", "Secret", "Service", "ServiceMonitor", "ConfigMap"):
        check(want in by_kind, f"k8s: no {want}")
    if failures:
        return
    secrets = {s["metadata"]["name"]: set((s.get("stringData") or s.get("data") or {}).keys())
               for s in by_kind["Secret"]}
    cms = {c["metadata"]["name"]: c for c in by_kind["ConfigMap"]}
    dep = by_kind["Deployment"][0]
    spec = dep["spec"]
    check(spec.get("replicas") == 1, "k8s: the Deployment must run exactly one replica per stream")
    check(spec.get("strategy", {}).get("type") == "Recreate",
          "k8s: the Deployment must use Recreate (never two readers of one stream)")
    pod = spec["template"]
    labels = pod["metadata"]["labels"]
    check(all(labels.get(k) == v for k, v in spec["selector"]["matchLabels"].items()),
          "k8s: the Deployment's selector does not match its pods")
    c = pod["spec"]["containers"][0]
    ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        p = c.get(probe, {}).get("httpGet", {})
        check(p.get("path") == "/sync/health", f"k8s: {probe} is not on /sync/health")
        check(p.get("port") in ports or p.get("port") in ports.values(),
              f"k8s: {probe} port {p.get('port')} is not a container port")
    for e in c.get("env", []):
        ref = e.get("valueFrom", {}).get("secretKeyRef")
        if ref:
            check(ref["key"] in secrets.get(ref["name"], set()),
                  f"k8s: env {e['name']} reads {ref['name']}/{ref['key']}, not in the Secret")
    vols = {v["name"]: v for v in pod["spec"].get("volumes", [])}
    for m in c.get("volumeMounts", []):
        check(m["name"] in vols, f"k8s: volumeMount {m['name']} has no volume")
    for v in vols.values():
        if "secret" in v:
            name = v["secret"]["secretName"]
            check(name in secrets, f"k8s: volume {v['name']}: no Secret {name}")
            for it in v["secret"].get("items", []):
                check(it["key"] in secrets.get(name, set()),
                      f"k8s: volume {v['name']}: Secret {name} has no key {it['key']}")
        if "configMap" in v:
            check(v["configMap"]["name"] in cms, f"k8s: no ConfigMap {v['configMap']['name']}")
    sc = pod["spec"].get("securityContext", {})
    check(sc.get("runAsNonRoot") is True, "k8s: pods must run as non-root")
    svc = by_kind["Service"][0]
    check(all(labels.get(k) == v for k, v in svc["spec"]["selector"].items()),
          "k8s: the Service does not select the Deployment's pods")
    svc_ports = {p["name"] for p in svc["spec"]["ports"]}
    for p in svc["spec"]["ports"]:
        tp = p.get("targetPort")
        check(tp in ports or tp in ports.values(), f"k8s: Service targetPort {tp} is not a container port")
    sm = by_kind["ServiceMonitor"][0]
    check(all(svc["metadata"]["labels"].get(k) == v
              for k, v in sm["spec"]["selector"]["matchLabels"].items()),
          "k8s: the ServiceMonitor does not select the Service")
    for ep in sm["spec"]["endpoints"]:
        check(ep.get("port") in svc_ports, f"k8s: ServiceMonitor port {ep.get('port')} not on the Service")
        check(ep.get("path", "/metrics") == "/metrics", "k8s: ServiceMonitor path is not /metrics")
    # the ConfigMap's configuration is one mysync accepts, with the secrets in place
    if mysync:
        cm = next(iter(cms.values()))
        mount = next(m["mountPath"] for m in c["volumeMounts"] if vols[m["name"]].get("secret"))
        with tempfile.TemporaryDirectory() as tmp:
            text = cm["data"]["mysync.yaml"].replace(mount, tmp)
            for key in secrets[next(iter(secrets))]:
                with open(os.path.join(tmp, key), "w", encoding="utf-8") as f:
                    f.write("placeholder\n")
            cfg = os.path.join(tmp, "mysync.yaml")
            with open(cfg, "w", encoding="utf-8") as f:
                f.write(text)
            env = {"PATH": "/usr/bin:/bin", "MONGODB_URI": "mongodb://u:p@mongo:27017/?replicaSet=rs0"}
            r = subprocess.run([mysync, "--check-config", "--config", cfg], env=env,
                               capture_output=True, text=True, check=False)
            check(r.returncode == 0, f"k8s: the ConfigMap's mysync.yaml is refused: {r.stderr.strip()}")
            check("placeholder" not in r.stdout, "k8s: --check-config printed a secret")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", required=True)
    ap.add_argument("--exported", required=True, help="the daemon's /metrics text")
    ap.add_argument("--mysync", help="the mysync binary (runs --check-config on the ConfigMap)")
    ap.add_argument("--only", choices=["metrics"], help="only the metric-name checks")
    a = ap.parse_args()
    fams = exported_families(a.exported)
    check(len(fams) > 20, f"{a.exported}: too few metric families ({len(fams)})")
    used = check_metrics(a.root, fams)
    if not a.only:
        check_compose(a.root)
        check_dockerfile(a.root)
        check_k8s(a.root, a.mysync)
    for f in failures:
        print("FAIL:", f)
    if failures:
        return 1
    print(f"deploy: ok ({len(used)} exported metrics used by the dashboard and alerts)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
