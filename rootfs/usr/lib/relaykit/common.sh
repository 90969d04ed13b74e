# relaykit runtime helpers, shared by the image entrypoint and the package's scripts.
# Sourced, not executed.  Never print a password: errors name files and line numbers.

RELAYKIT_CONF=${RELAYKIT_CONF:-/etc/relaykit/relaykit.conf}
# Paths come from the rendered configuration (relaykit.debian is their one home).
# shellcheck source=/dev/null
. "$RELAYKIT_CONF"
SASLDB=$RELAYKIT_SASLDB
CHROOT_SASLDB=$RELAYKIT_CHROOT_SASLDB

log() { printf 'relaykit: %s\n' "$*" >&2; }
die() { printf 'relaykit: error: %s\n' "$*" >&2; exit 64; }

# load_users FILE REALM: rebuild sasldb from FILE (user[@realm]:password per line).
# A fresh database each time, so users no longer listed are gone.
load_users() {
    users_file=$1 realm=$2
    new=$(mktemp "$SASLDB.new.XXXXXX")
    rm -f "$new"
    n=0 count=0
    while IFS= read -r line || [ -n "$line" ]; do
        n=$((n + 1))
        line=${line%$'\r'}
        case $line in ''|'#'*) continue ;; esac
        if ! [[ $line =~ ^([A-Za-z0-9._+-]+)(@([A-Za-z0-9.-]+))?:(.+)$ ]]; then
            rm -f "$new"
            die "$users_file line $n: expected user[@realm]:password"
        fi
        user=${BASH_REMATCH[1]} user_realm=${BASH_REMATCH[3]:-$realm}
        # -p: password on stdin, never on a command line.
        if ! printf '%s' "${BASH_REMATCH[4]}" |
                saslpasswd2 -p -c -f "$new" -u "$user_realm" "$user" 2>/dev/null; then
            rm -f "$new"
            die "$users_file line $n: saslpasswd2 could not add user '$user'"
        fi
        count=$((count + 1))
    done < "$users_file"
    if [ "$count" -eq 0 ]; then
        log "warning: $users_file lists no users: every AUTH will fail"
        saslpasswd2 -p -c -f "$new" -u "$realm" relaykit-placeholder </dev/null 2>/dev/null ||
            true
        saslpasswd2 -d -f "$new" -u "$realm" relaykit-placeholder 2>/dev/null || true
    fi
    # sasldb holds cleartext passwords: readable by root and group sasl only.
    chown root:sasl "$new" && chmod 0640 "$new"
    mv -f "$new" "$SASLDB"
    log "loaded $count SASL user(s) from $users_file"
}

# sync_chroot_sasldb: auxprop mechanisms read sasldb inside smtpd's chroot.  A copy
# (not a link: a link points outside the chroot, and overlayfs copy-up breaks hard links).
sync_chroot_sasldb() {
    [ -e "$SASLDB" ] || return 0
    tmp=$(mktemp "$CHROOT_SASLDB.XXXXXX")
    cat "$SASLDB" > "$tmp"
    chown root:postfix "$tmp" && chmod 0640 "$tmp"
    mv -f "$tmp" "$CHROOT_SASLDB"
}

# bare_host RELAYHOST: "[h]:587" -> "h", "h:25" -> "h", "h" -> "h"
bare_host() {
    local h=$1
    if [[ $h == \[* ]]; then h=${h#\[}; h=${h%%\]*}; else h=${h%%:*}; fi
    printf '%s' "$h"
}

# install_credentials SOURCE RELAYHOST: sasl_passwd root 0600, mapped, keyed right.
install_credentials() {
    local src=$1 relayhost=$2
    [ -r "$src" ] || die "outbound SASL is on but $src is missing (Postfix sasl_passwd format)"
    install -m 0600 -o root -g root "$src" /etc/postfix/sasl_passwd
    local key found=no
    while read -r key _; do
        case $key in ''|'#'*) continue ;; esac
        if [ "$key" = "$relayhost" ] || [ "$key" = "$(bare_host "$relayhost")" ]; then
            found=yes
        fi
    done < /etc/postfix/sasl_passwd
    [ "$found" = yes ] || die "$src has no entry for relayhost '$relayhost': key it as" \
        "'$relayhost' or '$(bare_host "$relayhost")', else Postfix sends no AUTH"
    postmap /etc/postfix/sasl_passwd
    chmod 0600 /etc/postfix/sasl_passwd.db
}

# self_signed CERT KEY CN: a fresh pair made on this host, never shipped.
self_signed() {
    cert=$1 key=$2 cn=$3
    umask 077
    openssl req -x509 -newkey rsa:3072 -sha256 -days 825 -nodes -subj "/CN=$cn" \
        -addext "subjectAltName=DNS:$cn" -keyout "$key" -out "$cert" 2>/dev/null ||
        die "openssl could not create a self-signed certificate"
    chmod 0644 "$cert"
    umask 022
}

# check_pair CERT KEY: the key must belong to the certificate.
check_pair() {
    [ "$(openssl x509 -in "$1" -noout -pubkey 2>/dev/null)" = \
      "$(openssl pkey -in "$2" -pubout 2>/dev/null)" ] ||
        die "TLS key $2 does not match certificate $1"
}
