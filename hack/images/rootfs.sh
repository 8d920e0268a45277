#!/usr/bin/env bash
# Print the path of a Debian bookworm minbase root file system tarball, made with
# debootstrap and trimmed like the official debian:bookworm-slim image.
#
#   hack/images/rootfs.sh CACHE_DIR
#
# The tarball is CACHE_DIR/bookworm-minbase-YYYYMMDD.tar; one younger than
# BASE_MAX_AGE_DAYS (default 7) is reused. The mirror is the one this machine's apt uses
# (/etc/apt/sources.list{,.d}); MIRROR=... overrides it. Needs root (debootstrap chroots).
# Progress goes to stderr, the tarball's path to stdout.
set -euo pipefail

cache=${1:?usage: rootfs.sh CACHE_DIR}
max_age=${BASE_MAX_AGE_DAYS:-7}
suite=bookworm
mkdir -p "$cache"

log() { printf 'rootfs: %s\n' "$*" >&2; }

# A tarball younger than max_age days (find's -mtime -N: modified less than N*24h ago).
newest=$(find "$cache" -maxdepth 1 -name "$suite-minbase-*.tar" -mtime "-$max_age" -printf '%T@ %p\n' \
  | sort -rn | head -n1 | cut -d' ' -f2-)
if [[ -n $newest ]]; then
  log "reusing $newest (younger than $max_age days)"
  printf '%s\n' "$newest"
  exit 0
fi

if ((EUID != 0)); then
  echo "rootfs: debootstrap needs root" >&2
  exit 1
fi

# The Debian mirror and security mirror this machine's apt uses: one-line sources.list
# entries and deb822 .sources stanzas.
read -r mirror security < <(python3 - "$suite" <<'EOF'
import glob, re, sys
suite = sys.argv[1]
main, sec = "", ""
def seen(uris, suites):
    global main, sec
    for u in uris:
        if u.startswith(("http://", "https://")) and "debian" in u:
            if suite in suites and not main:
                main = u
            if f"{suite}-security" in suites and not sec:
                sec = u
for path in ["/etc/apt/sources.list", *sorted(glob.glob("/etc/apt/sources.list.d/*.list"))]:
    try:
        lines = open(path).read().splitlines()
    except OSError:
        continue
    for line in lines:
        # deb [arch=amd64 signed-by=...] URI SUITE COMPONENT...
        words = re.sub(r"\[[^]]*\]", " ", line.split("#", 1)[0]).split()
        if len(words) >= 3 and words[0] == "deb":
            seen([words[1]], [words[2]])
for path in sorted(glob.glob("/etc/apt/sources.list.d/*.sources")):
    try:
        text = open(path).read()
    except OSError:
        continue
    for stanza in text.split("\n\n"):
        fields = {}
        for line in stanza.splitlines():
            if line.startswith("#") or ":" not in line:
                continue
            k, v = line.split(":", 1)
            fields[k.strip().lower()] = v.split()
        if "deb" in fields.get("types", []) and fields.get("enabled", ["yes"]) != ["no"]:
            seen(fields.get("uris", []), fields.get("suites", []))
print(main or "http://deb.debian.org/debian", sec or "-")
EOF
)
mirror=${MIRROR:-${mirror:-http://deb.debian.org/debian}}
[[ ${security:--} == - ]] && security=""

stamp=$(date +%Y%m%d)
out="$cache/$suite-minbase-$stamp.tar"
work=$(mktemp -d "$cache/rootfs.XXXXXX")
root="$work/root"

cleanup() {
  # debootstrap mounts /proc and /sys in the target while it runs; never rm -rf across
  # a mount point.
  local m
  while read -r m; do umount "$m" 2>/dev/null || umount -l "$m" || true; done < <(
    awk -v d="$work/" 'index($5, d) == 1 { print $5 }' /proc/self/mountinfo | sort -r)
  if awk -v d="$work/" 'index($5, d) == 1 { found = 1 } END { exit !found }' /proc/self/mountinfo; then
    log "mounts remain under $work; leaving it"
  else
    rm -rf "$work"
  fi
}
trap cleanup EXIT

log "debootstrap --variant=minbase $suite from $mirror (about a minute)"
if ! debootstrap --variant=minbase "$suite" "$root" "$mirror" >"$work/debootstrap.log" 2>&1; then
  tail -n 30 "$work/debootstrap.log" >&2
  tail -n 30 "$root/debootstrap/debootstrap.log" >&2 2>/dev/null || true
  exit 1
fi

# Trim and configure it like debian:bookworm-slim (debuerreotype's --slim): no docs, man
# pages or translations now or from later installs; apt keeps no caches.
cat >"$root/etc/dpkg/dpkg.cfg.d/docker" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
EOF
cat >"$root/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
echo 'Acquire::Languages "none";' >"$root/etc/apt/apt.conf.d/docker-no-languages"
echo 'Acquire::GzipIndexes "true";' >"$root/etc/apt/apt.conf.d/docker-gzip-indexes"
echo 'Apt::AutoRemove::SuggestsImportant "false";' >"$root/etc/apt/apt.conf.d/docker-autoremove-suggests"

rm -f "$root/etc/apt/sources.list"
{
  printf 'Types: deb\nURIs: %s\nSuites: %s %s-updates\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
    "$mirror" "$suite" "$suite"
  if [[ -n $security ]]; then
    printf '\nTypes: deb\nURIs: %s\nSuites: %s-security\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
      "$security" "$suite"
  fi
} >"$root/etc/apt/sources.list.d/debian.sources"

find "$root/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
find "$root/usr/share/doc" -mindepth 1 -type d -empty -delete
rm -rf "$root"/usr/share/{man,groff,info,lintian,linda}/*
find "$root/usr/share/locale" -mindepth 1 -maxdepth 1 -not -name locale.alias -exec rm -rf {} +
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb \
  "$root"/var/log/* "$root/debootstrap" "$root"/tmp/* "$root"/var/tmp/*
# Host specifics: the runtime provides these.
: >"$root/etc/resolv.conf"
: >"$root/etc/machine-id"
printf 'localhost\n' >"$root/etc/hostname"

tar --numeric-owner --xattrs --one-file-system -C "$root" -cf "$out.partial" .
mv "$out.partial" "$out"
# Older tarballs are superseded.
find "$cache" -maxdepth 1 -name "$suite-minbase-*.tar" -not -path "$out" -delete
log "made $out ($(du -m "$out" | cut -f1) MB)"
printf '%s\n' "$out"
