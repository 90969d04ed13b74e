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

# secret_lines FILE: the lines of a secrets file that carry data, as "N<TAB>line".
# Rules (README, runtime contract): a trailing CR is dropped; blank lines and lines whose
# first non-blank character is `#` are comments; any other line must neither start nor
# end with a space or tab (whitespace there is almost always a copy-paste accident, and
# kept silently it becomes part of a name or password).
secret_lines() {
    local file=$1 line n=0
    while IFS= read -r line || [ -n "$line" ]; do
        n=$((n + 1))
        line=${line%$'\r'}
        [[ $line =~ ^[[:space:]]*(#.*)?$ ]] && continue
        if [[ $line =~ ^[[:space:]] || $line =~ [[:space:]]$ ]]; then
            die "$file line $n: space or tab at the start or end of the line (remove it)"
        fi
        printf '%s\t%s\n' "$n" "$line"
    done < "$file"
}

# load_users FILE REALM: rebuild sasldb from FILE (user[@realm]:password per line).
# A fresh database each time, so users no longer listed are gone; it replaces the old
# one in one rename, so a running saslauthd sees either the old or the new set.
# Sets loaded_users to the number of users.
load_users() {
    users_file=$1 realm=$2
    local lines n line user user_realm
    declare -A seen=()
    lines=$(secret_lines "$users_file") || exit $?
    new=$(mktemp "$SASLDB.new.XXXXXX")
    rm -f "$new"
    loaded_users=0
    while IFS=$'\t' read -r n line; do
        [ -n "$n" ] || continue
        if ! [[ $line =~ ^([A-Za-z0-9._+-]+)(@([A-Za-z0-9.-]+))?:(.+)$ ]]; then
            rm -f "$new"
            die "$users_file line $n: expected user[@realm]:password"
        fi
        user=${BASH_REMATCH[1]} user_realm=${BASH_REMATCH[3]:-$realm}
        if [ -n "${seen[$user@$user_realm]:-}" ]; then
            rm -f "$new"
            die "$users_file line $n: user '$user@$user_realm' already on line ${seen[$user@$user_realm]}"
        fi
        seen[$user@$user_realm]=$n
        # -p: password on stdin, never on a command line.
        if ! printf '%s' "${BASH_REMATCH[4]}" |
                saslpasswd2 -p -c -f "$new" -u "$user_realm" "$user" 2>/dev/null; then
            rm -f "$new"
            die "$users_file line $n: saslpasswd2 could not add user '$user'"
        fi
        loaded_users=$((loaded_users + 1))
    done <<< "$lines"
    if [ "$loaded_users" -eq 0 ]; then  # an empty but valid database: every AUTH fails
        saslpasswd2 -p -c -f "$new" -u "$realm" relaykit-placeholder </dev/null 2>/dev/null ||
            true
        saslpasswd2 -d -f "$new" -u "$realm" relaykit-placeholder 2>/dev/null || true
    fi
    # sasldb holds cleartext passwords: readable by root and group sasl only.
    chown root:sasl "$new" && chmod 0640 "$new"
    mv -f "$new" "$SASLDB"
}

# sasl_logins: every user@realm in sasldb, one a line (names only, no passwords).
sasl_logins() {
    [ -s "$SASLDB" ] || return 0
    sasldblistusers2 -f "$SASLDB" 2>/dev/null | sed -n 's/^\([^:]*\): .*/\1/p'
}

# build_sender_logins OUT REALM [EXTRA]: a Postfix regexp: table for
# smtpd_sender_login_maps: every user owns user@realm (bare `user` too in the default
# realm), and EXTRA grants more: `ADDRESS LOGIN[,LOGIN...]` per line, ADDRESS
# `local@domain` or `@domain`, each LOGIN a user of sasl-users.  A regexp table, not a
# hash: Postfix asks every table for the full address before any for @domain, and the
# profile's catch-all identity rule would answer first.  Exact addresses come before
# domains.  Names only: no secret in this table.
build_sender_logins() {
    local out=$1 realm=$2 extra=${3:-} login user n line key logins l lines re
    declare -A owners=() known=()
    while IFS= read -r login; do
        [ -n "$login" ] || continue
        user=${login%@*}
        known[$login]=1
        owners[${login,,}]=$login
        if [ "${login#*@}" = "$realm" ]; then
            known[$user]=1
            owners[${login,,}]+=",$user"
        fi
    done < <(sasl_logins)
    if [ -n "$extra" ] && [ -e "$extra" ]; then
        lines=$(secret_lines "$extra") || exit $?
        while IFS=$'\t' read -r n line; do
            [ -n "$n" ] || continue
            if ! [[ $line =~ ^([A-Za-z0-9._+-]*@[A-Za-z0-9.-]+)[[:space:]]+([^[:space:]]+)$ ]]; then
                die "$extra line $n: expected ADDRESS LOGIN[,LOGIN...] (ADDRESS user@domain or @domain)"
            fi
            key=${BASH_REMATCH[1],,} logins=${BASH_REMATCH[2]}
            IFS=, read -ra l <<< "$logins"
            for login in "${l[@]}"; do
                [ -n "${known[$login]:-}" ] ||
                    die "$extra line $n: login '$login' is not a user in the users file"
            done
            owners[$key]=${owners[$key]:+${owners[$key]},}$logins
        done <<< "$lines"
    fi
    {
        printf '# relaykit: sender address -> SASL logins that may use it (built at start)\n'
        for key in "${!owners[@]}"; do
            # A back-reference escapes each character: ${var//} has none before bash 5.2.
            # shellcheck disable=SC2001
            re=$(sed 's/[.+]/\\&/g' <<< "$key")
            if [[ $key == @* ]]; then
                printf '2 /%s$/ %s\n' "$re" "${owners[$key]}"
            else
                printf '1 /^%s$/ %s\n' "$re" "${owners[$key]}"
            fi
        done | sort | cut -d' ' -f2-
    } > "$out.new"
    chmod 0644 "$out.new"
    mv -f "$out.new" "$out"
}

# sync_chroot_sasldb: auxprop mechanisms read sasldb inside smtpd's chroot.  A copy
# (not a link: a link points outside the chroot, and overlayfs copy-up breaks hard links).
sync_chroot_sasldb() {
    [ -e "$SASLDB" ] || { rm -f "$CHROOT_SASLDB"; return 0; }
    mkdir -p "$(dirname "$CHROOT_SASLDB")"
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
# Written to $SASL_PASSWD (default /etc/postfix/sasl_passwd).
install_credentials() {
    local src=$1 relayhost=$2 dest=${SASL_PASSWD:-/etc/postfix/sasl_passwd}
    [ -r "$src" ] || die "outbound SASL is on but $src is missing (Postfix sasl_passwd format)"
    install -m 0600 -o root -g root "$src" "$dest.new"
    local key found=no
    while read -r key _; do
        case $key in ''|'#'*) continue ;; esac
        if [ "$key" = "$relayhost" ] || [ "$key" = "$(bare_host "$relayhost")" ]; then
            found=yes
        fi
    done < "$dest.new"
    if [ "$found" != yes ]; then
        rm -f "$dest.new"
        die "$src has no entry for relayhost '$relayhost': key it as" \
            "'$relayhost' or '$(bare_host "$relayhost")', else Postfix sends no AUTH"
    fi
    postmap "$dest.new"
    chmod 0600 "$dest.new.db"
    mv -f "$dest.new.db" "$dest.db" && mv -f "$dest.new" "$dest"
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
