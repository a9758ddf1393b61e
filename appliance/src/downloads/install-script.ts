import { AGENT_DOWNLOAD_PATH, AGENT_INSTALL_SCRIPT_PATH, FerryError, type AgentBinaryInfo } from '@ferry/protocol';

/** Where install.sh puts things on the source (under $FERRY_INSTALL_ROOT when that is set). */
export const INSTALLED_EXECUTABLE = '/usr/local/sbin/ferry-agent';
export const INSTALLED_STATE_DIR = '/var/lib/ferry-agent';
export const INSTALLED_UNIT = '/etc/systemd/system/ferry-agent.service';

export interface InstallScriptParams {
  applianceUrl: string;
  fingerprint: string;
  pin: string;
  agent: AgentBinaryInfo;
  unit: string;
}

/** A value for the script's single-quoted assignments; everything we put there is from a fixed alphabet. */
function quoted(value: string, what: string): string {
  if (!/^[A-Za-z0-9:/.+=_\-[\]]*$/.test(value)) throw new FerryError('BAD_REQUEST', `${what} has characters an install script cannot carry: ${JSON.stringify(value.slice(0, 80))}`);
  return `'${value}'`;
}

/** `https://HOST[:PORT]` from a request's Host header; anything that is not a host name or address is refused. */
export function applianceUrlOf(host: string | undefined): string {
  if (!host || !/^(?:[A-Za-z0-9.-]{1,253}|\[[0-9A-Fa-f:.]{2,45}\])(?::[0-9]{1,5})?$/.test(host)) {
    throw new FerryError('BAD_REQUEST', `the request's Host header ${JSON.stringify(host ?? '')} is not a host name or address with an optional port`);
  }
  return `https://${host}`;
}

/**
 * The one line an engineer pastes on the source as root. The script goes to a private temp file rather than
 * through a pipe into sh, so a refused download (another certificate than the pinned one) fails the line
 * instead of running an empty script with exit status 0.
 */
export function installCommand(p: { applianceUrl: string; pin: string; token: string }): string {
  const url = quoted(`${p.applianceUrl}${AGENT_INSTALL_SCRIPT_PATH}`, 'the appliance URL');
  return (
    `f=$(mktemp) && curl -fsSk --pinnedpubkey ${quoted(p.pin, 'the pin')} -o "$f" ${url} && sh "$f" --token ${quoted(p.token, 'the token')}; ` +
    `r=$?; rm -f "$f"; [ "$r" = 0 ]`
  );
}

/**
 * install.sh for this appliance and this agent build (POSIX sh; Debian's is dash). It carries no secret: the
 * enrollment token comes as --token. curl pins the certificate's public key (-k only skips the CA check, the
 * pin is still enforced), and the executable must match the SHA-256 the script was made with.
 */
export function installScript(p: InstallScriptParams): string {
  if (p.unit.split('\n').includes('FERRY_UNIT')) throw new FerryError('INTERNAL', 'the systemd unit contains the line FERRY_UNIT, which ends the script’s here-document');
  return `#!/bin/sh
# Ferry agent installer from the appliance ${p.applianceUrl} (agent ${p.agent.version}).
# Usage, as root: sh install.sh --token ferry_enroll_… [--name SOURCE_NAME]
# Downloads the agent executable (certificate pinned, SHA-256 checked) to ${INSTALLED_EXECUTABLE}, enrolls it
# with the one-time token, installs ${INSTALLED_UNIT} and starts it.
# FERRY_INSTALL_ROOT=DIR installs under DIR instead of / (the service is then written but not started).
set -eu

APPLIANCE=${quoted(p.applianceUrl, 'the appliance URL')}
FINGERPRINT=${quoted(p.fingerprint, 'the fingerprint')}
PIN=${quoted(p.pin, 'the pin')}
AGENT_VERSION=${quoted(p.agent.version, 'the agent version')}
AGENT_SHA256=${quoted(p.agent.sha256, 'the agent SHA-256')}
ROOT=\${FERRY_INSTALL_ROOT:-}

say() { printf 'ferry-install: %s\\n' "$*" >&2; }
die() { say "$*"; exit 1; }

token=''
name=''
while [ $# -gt 0 ]; do
  case $1 in
    --token) [ $# -ge 2 ] || die '--token needs a value'; token=$2; shift 2 ;;
    --token=*) token=\${1#--token=}; shift ;;
    --name) [ $# -ge 2 ] || die '--name needs a value'; name=$2; shift 2 ;;
    --name=*) name=\${1#--name=}; shift ;;
    -h|--help) sed -n '2,6p' "$0" >&2; exit 0 ;;
    *) die "unknown argument $1 (usage: install.sh --token ferry_enroll_… [--name SOURCE_NAME])" ;;
  esac
done
[ -n "$token" ] || die 'no enrollment token: use the whole install command the appliance shows (it passes --token)'
case $(uname -sm) in
  'Linux x86_64') ;;
  *) die "the agent executable is for Linux x86-64; this is $(uname -sm)" ;;
esac
[ -n "$ROOT" ] || [ "$(id -u)" = 0 ] || die 'run as root: the agent reads raw disks and installs a system service'
for tool in curl sha256sum mkdir chmod mv; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool is missing on this machine; install it and run the command again"
done

bin=$ROOT${INSTALLED_EXECUTABLE}
state=$ROOT${INSTALLED_STATE_DIR}
unit=$ROOT${INSTALLED_UNIT}
mkdir -p "\${bin%/*}"
tmp=\${bin%/*}/.ferry-agent.download.$$
trap 'rm -f "$tmp"' EXIT

say "downloading the agent $AGENT_VERSION from $APPLIANCE (certificate pinned)"
curl -fsSk --pinnedpubkey "$PIN" -o "$tmp" "$APPLIANCE${AGENT_DOWNLOAD_PATH}" ||
  die "the download from $APPLIANCE failed (curl's message is above); a pin mismatch means another certificate than the appliance's"
got=$(sha256sum "$tmp") && got=\${got%% *}
[ "$got" = "$AGENT_SHA256" ] ||
  die "the downloaded agent has SHA-256 $got, not $AGENT_SHA256: the appliance's agent changed meanwhile; get a new install command and run it"
chmod 0755 "$tmp"
mv -f "$tmp" "$bin"
say "installed $bin ($("$bin" --version))"

if [ -n "$name" ]; then
  "$bin" enroll --appliance "$APPLIANCE" --fingerprint "$FINGERPRINT" --token "$token" --state "$state" --name "$name"
else
  "$bin" enroll --appliance "$APPLIANCE" --fingerprint "$FINGERPRINT" --token "$token" --state "$state"
fi

mkdir -p "\${unit%/*}"
cat >"$unit.tmp" <<'FERRY_UNIT'
${p.unit.replace(/\n$/, '')}
FERRY_UNIT
mv -f "$unit.tmp" "$unit"
say "installed $unit"

start="${INSTALLED_EXECUTABLE} run --state ${INSTALLED_STATE_DIR}"
if [ -n "$ROOT" ]; then
  say "installed under FERRY_INSTALL_ROOT=$ROOT: the service was not started. On that system: systemctl enable --now ferry-agent"
elif [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
  systemctl daemon-reload
  systemctl enable ferry-agent
  systemctl restart ferry-agent
  say 'the ferry-agent service is running; its log: journalctl -u ferry-agent -f'
else
  say 'systemd is not running on this machine, so the service was installed but not started.'
  say "The agent is enrolled. Start it by hand (it must keep running): nohup $start >>/var/log/ferry-agent.log 2>&1 &"
fi
`;
}
