#!/bin/bash
# nsdns-data.sh -- writes nsdns registry files for the same data set the peers answer (gen-data.sh):
# network "pbnet" with c0..cN-1 and the client pb-client. Measures nothing.
#   $PB_WORK/data/nsdns/pbnet.json         standalone: nsdns listens on the gateway, like the peers
#   $PB_WORK/data/nsdns-netns/pbnet.json   the client endpoint lives in netns pb-client, so nsdns
#                                          serves 127.0.0.11:53 inside it (the embedded-DNS path)
. "$(dirname "$0")/peers/lib.sh"
OUT=$PB_WORK/data
mkdir -p "$OUT/nsdns" "$OUT/nsdns-netns"
for mode in standalone netns; do
    dir=$OUT/nsdns; netns=
    [ "$mode" = netns ] && dir=$OUT/nsdns-netns && netns=",\"netns\":\"/run/netns/$PB_CLIENT_NS\""
    awk -v gw="$PB_GW" -v cip="$PB_CLIENT_IP" -v netns="$netns" 'BEGIN {
        printf "{\"name\":\"pbnet\",\"subnets\":[{\"subnet\":\"10.99.0.0/16\",\"gateway\":\"%s\"}],\"endpoints\":[", gw
        printf "{\"name\":\"pb-client\",\"ipv4\":\"%s\"%s}", cip, netns
    }
    { printf ",{\"name\":\"%s\",\"ipv4\":\"%s\"}", $2, $1 }
    END { print "]}" }' "$OUT/hosts" > "$dir/pbnet.json"
done
