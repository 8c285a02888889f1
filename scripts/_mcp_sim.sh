# Sourced by scripts/mcp-inspector and scripts/mcp-conformance: start the simulator on a free
# port and write an agents file for it (a read-only agent `reader`, a writer `team-bot`) in $WORK.
# The credential is the simulator seed's fake acme OAT; nothing reaches the real Docker Hub.
WORK="$(mktemp -d -t sink-mcp.XXXXXX)"
"$ROOT/.venv/bin/python" -m sink.hubsim --port 0 >"$WORK/hubsim.log" 2>&1 &
SIM=$!
cleanup() { kill "$SIM" 2>/dev/null || true; wait "$SIM" 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
URL=""
for _ in $(seq 1 100); do
  URL="$(grep -o 'http://[0-9.:]*' "$WORK/hubsim.log" | head -n 1 || true)"
  [ -n "$URL" ] && break
  kill -0 "$SIM" 2>/dev/null || { cat "$WORK/hubsim.log" >&2; exit 2; }
  sleep 0.1
done
[ -n "$URL" ] || { echo "the simulator did not start" >&2; exit 2; }
printf '%s' 'dckr_oat_mGUb8viwoTjRp7goKqWQNFHBziuPKlbZ' >"$WORK/oat"
chmod 600 "$WORK/oat"
cat >"$WORK/agents.yaml" <<YAML
agents:
  reader:
    connection: {base_url: '$URL', identifier: acme, secret_file: oat}
    settings: {org: acme, namespace: acme}
    policy: {read_only: true, read: {namespaces: [acme]}}
  team-bot:
    connection: {base_url: '$URL', identifier: acme, secret_file: oat}
    settings: {org: acme, namespace: acme}
    policy:
      templates: [create-repository, delete-team]
      write: {namespaces: [acme], repositories: ["acme/team-*"]}
YAML
echo "Docker Hub simulator: $URL; agents file: $WORK/agents.yaml" >&2
