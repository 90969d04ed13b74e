# --- relaykit: helpers shared by the maintainer scripts (inlined at build time) ---
# Everything of this package lives under its own name: conffiles in $ETC, data in
# $DATA, state in $STATE.  State never lives in /usr/share: postrm runs after dpkg has
# deleted the package's files, so the undo data must survive the package itself.
PKG=@PACKAGE@
STATE=/var/lib/relaykit/$PKG
DATA=/usr/share/relaykit/$PKG
ETC=@ETC@
CONF=@CONF@
TAB=$(printf '\t')

SASL_LINK=@SASL_LINK@        # bookworm: /etc/postfix/sasl/smtpd.conf -> ours (see postinst)

# rk_ours_link PATH: PATH is a symlink a relaykit package made to its own smtpd.conf.
rk_ours_link() {
    [ -L "$1" ] && case $(readlink "$1") in /etc/relaykit/relaykit-*/sasl/smtpd.conf) ;;
        *) false ;; esac
}

rk_log() { echo "$PKG: $*" >&2; }

# rk_has FILE KEY: FILE has a line whose first tab-separated field is KEY.
rk_has() {
    [ -f "$1" ] && awk -F'\t' -v k="$2" '$1 == k { f = 1 } END { exit !f }' "$1"
}

# rk_field FILE KEY N: field N of KEY's line.
rk_field() {
    [ -f "$1" ] || return 0
    awk -F'\t' -v k="$2" -v n="$3" '$1 == k { print $n; exit }' "$1"
}

# rk_rest FILE KEY N: fields N.. of KEY's line, joined back with tabs (a saved value).
rk_rest() {
    [ -f "$1" ] || return 0
    awk -F'\t' -v k="$2" -v n="$3" '$1 == k {
        s = $n; for (i = n + 1; i <= NF; i++) s = s "\t" $i; print s; exit }' "$1"
}

# rk_drop FILE KEY: delete KEY's line from FILE.
rk_drop() {
    [ -f "$1" ] || return 0
    awk -F'\t' -v k="$2" '$1 != k' "$1" > "$1.new" && mv -f "$1.new" "$1"
}

# rk_snapshot FILE: `postconf -n` once, so per-key look-ups do not run postconf each time.
rk_snapshot() { postconf -n 2>/dev/null > "$1" || true; }

# rk_current SNAPSHOT KEY: "set<TAB>VALUE" or "unset<TAB>".
rk_current() {
    awk -v k="$2" '
        index($0, k " = ") == 1 { print "set\t" substr($0, length(k) + 4); f = 1; exit }
        $0 == k " =" { print "set\t"; f = 1; exit }
        END { if (!f) print "unset\t" }' "$1"
}

# rk_norm VALUE: a list value compared as Postfix reads it (commas = blanks).
rk_norm() { printf '%s' "$1" | tr ',\t' '  ' | tr -s ' ' | sed 's/^ //; s/ $//'; }

# rk_host_name: the identity of this host (/etc/mailname, else the FQDN, else the name).
rk_host_name() {
    name=""
    [ ! -s /etc/mailname ] || name=$(head -n 1 /etc/mailname | tr -d ' \t')
    [ -n "$name" ] || name=$(hostname --fqdn 2>/dev/null) || name=""
    [ -n "$name" ] || name=$(hostname)
    printf '%s' "$name"
}

# rk_revert_main KEY...: put main.cf KEYs back as main.orig recorded them, forget them.
rk_revert_main() {
    for key in "$@"; do
        rk_has "$STATE/main.orig" "$key" || continue
        state=$(rk_field "$STATE/main.orig" "$key" 2)
        if [ "$state" = set ]; then
            postconf -e "$key=$(rk_rest "$STATE/main.orig" "$key" 3)"
        else
            postconf -X "$key" 2>/dev/null || true
        fi
        rk_drop "$STATE/main.orig" "$key"
        rk_drop "$STATE/main.applied" "$key"
    done
}

# rk_revert_master KEY...: restore each master.cf service we replaced, delete those we added.
rk_revert_master() {
    for key in "$@"; do
        rk_has "$STATE/master.orig" "$key" || continue
        if [ "$(rk_field "$STATE/master.orig" "$key" 2)" = present ]; then
            postconf -M "$key=$(rk_rest "$STATE/master.orig" "$key" 3)"
        else
            postconf -MX "$key" 2>/dev/null || true
        fi
        rk_drop "$STATE/master.orig" "$key"
    done
}

# rk_keys FILE: the first fields of FILE, one per line.
rk_keys() { [ -f "$1" ] && cut -f1 "$1" || true; }

# rk_created PATH: remember a file or directory we made, for purge.
rk_created() {
    rk_has "$STATE/created" "$1" || printf '%s\n' "$1" >> "$STATE/created"
}

# What every relaykit package uses alike (the saslauthd socket directory and its
# statoverride, the chroot copy of sasldb2, Postfix's TLS caches, the saslauthd unit's
# enablement) is recorded once in $SHARED and undone by the purge of the last relaykit
# package: purging a leftover package never breaks the one installed after it.
SHARED=/var/lib/relaykit/shared-created

# rk_shared_created PATH: a path made for relaykit as a whole.
rk_shared_created() {
    mkdir -p /var/lib/relaykit
    rk_has "$SHARED" "$1" || printf '%s\n' "$1" >> "$SHARED"
}

# rk_others: the other relaykit packages dpkg knows (installed, or removed but not
# purged), one per line.
rk_others() {
    dpkg-query -W -f '${Package} ${db:Status-Abbrev}\n' 'relaykit-*' 2>/dev/null |
        awk -v me="$PKG" '$1 != me && $2 !~ /^[up]n/ { print $1 }' || true
}

# rk_postfix ACTION: through invoke-rc.d, so policy-rc.d is obeyed (101: denied, e.g. in
# a chroot or image build: not an error).  reload only touches a running postfix.
# Any other failure fails the maintainer script: a relay that does not start is not
# installed.
rk_postfix() {
    command -v invoke-rc.d >/dev/null 2>&1 || return 0
    if [ "$1" = reload ] && ! postfix status >/dev/null 2>&1; then return 0; fi
    rc=0
    invoke-rc.d --quiet postfix "$1" >/dev/null 2>&1 || rc=$?
    case $rc in
        0|101) ;;
        *) rk_log "error: 'invoke-rc.d postfix $1' failed ($rc); see 'postfix check'"
           return 1 ;;
    esac
}
# --- end of shared helpers ---
