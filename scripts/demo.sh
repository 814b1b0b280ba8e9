#!/usr/bin/env bash
# EFSC demo: one provider, two consumers and a TCC trade through the paper's
# credentials (self-certifying did:efsc DIDs, a provider-extended TIT, TIC
# application and issuance, a run of jointly signed TSCs issued by the TCC,
# independent re-verification, a forged settlement caught), then the same
# parties on a local broker + 4-node PBFT devnet (DIDs and template
# registered, offer published and matched, TICs recorded opening channels),
# and a short issuance benchmark.
# Artifacts go to $OUT (default demo-out/). Exit 0 only if every check passed.
set -uo pipefail
EFSC=${EFSC:-.build/release/efsc}
OUT=${OUT:-demo-out}
SETTLEMENTS=${SETTLEMENTS:-12}
rm -rf "$OUT" && mkdir -p "$OUT"/{dids,tic,tsc,templates}
pass=0; fail=0
ok()   { pass=$((pass+1)); printf '  \033[32mok\033[0m   %s\n' "$*"; }
bad()  { fail=$((fail+1)); printf '  \033[31mFAIL\033[0m %s\n' "$*"; }
check() { local what=$1; shift; if "$@" >/dev/null 2>"$OUT/last-error"; then ok "$what"; else bad "$what: $(head -c 300 "$OUT/last-error")"; fi; }
field() { grep -o "\"$2\": *\"[^\"]*\"" "$1" | head -1 | sed 's/.*: *"\(.*\)"/\1/'; }

echo "== EFSC demo — $($EFSC version)"
echo "-- 1. identities (self-certifying did:efsc, DID Core 1.0 documents)"
for who in provider consumer1 consumer2 tcc; do
  "$EFSC" did create --network demo --log "$OUT/dids/$who.log.json" > "$OUT/dids/$who.json" || { bad "did create $who"; exit 1; }
  declare "DID_$who=$(field "$OUT/dids/$who.json" did)"
  declare "SK_$who=$(field "$OUT/dids/$who.json" secretKeyMultibase)"
  v="DID_$who"; ok "$who: ${!v}"
done
DOCS=(); for who in provider consumer1 consumer2 tcc; do DOCS+=(--did-document "$OUT/dids/$who.log.json"); done
for who in provider consumer1 consumer2 tcc; do
  v="DID_$who"; "$EFSC" did resolve "${DOCS[@]}" "${!v}" > "$OUT/dids/$who.document.json" || bad "resolve $who"
done

echo "-- 2. templates (base TIT/TST + provider's time-of-day TIT)"
"$EFSC" template show tit > "$OUT/templates/tit.json" && "$EFSC" template show tst > "$OUT/templates/tst.json"
"$EFSC" template example --owner "$DID_provider" > "$OUT/templates/tit-time-of-day.json"
check "provider template extends the base TIT" "$EFSC" template validate --template "$OUT/templates/tit-time-of-day.json" \
  <("$EFSC" template example --owner "$DID_provider" --consumer "$DID_consumer1")
TEMPLATES=(--template "$OUT/templates/tit-time-of-day.json")

echo "-- 3. trade initiation: consumer applies, provider issues the TIC"
for c in consumer1 consumer2; do
  d="DID_$c"; s="SK_$c"
  "$EFSC" template example --owner "$DID_provider" --consumer "${!d}" --period 60 --evidence-every 10 > "$OUT/tic/$c.claim.json"
  "$EFSC" tic apply --secret-key "${!s}" --verification-method "${!d}#key-1" "${TEMPLATES[@]}" \
    --tit urn:efsc:template:tit:time-of-day "$OUT/tic/$c.claim.json" > "$OUT/tic/$c.application.json" || bad "tic apply $c"
  "$EFSC" tic issue --secret-key "$SK_provider" --verification-method "$DID_provider#key-1" "${TEMPLATES[@]}" "${DOCS[@]}" \
    "$OUT/tic/$c.application.json" > "$OUT/tic/$c.tic.json" || bad "tic issue $c"
  check "TIC for $c verifies (Eq. 1 and 2)" "$EFSC" tic verify "${TEMPLATES[@]}" "${DOCS[@]}" "$OUT/tic/$c.tic.json"
done

echo "-- 4. off-chain settlements: provider proposes, consumer countersigns, TCC issues ($SETTLEMENTS per trade)"
start=$(( $(date +%s) - 60 * SETTLEMENTS - 60 ))
for c in consumer1 consumer2; do
  d="DID_$c"; s="SK_$c"
  for i in $(seq 1 "$SETTLEMENTS"); do
    t0=$((start + (i-1)*60)); t1=$((t0 + 60))
    from=$(date -u -d "@$t0" +%Y-%m-%dT%H:%M:%SZ); to=$(date -u -d "@$t1" +%Y-%m-%dT%H:%M:%SZ)
    usage=$(awk "BEGIN{print 2/60}"); fee=$(awk "BEGIN{print 2/60*12.5}")
    printf '{"providerDid":"%s","consumerDid":"%s","channelId":"demo-%s","sequence":%d,"usage":%s,"fee":%s,"start":"%s","end":"%s","encryptionMethod":"HPKE-X25519-SHA256-ChaCha20Poly1305"}' \
      "$DID_provider" "${!d}" "$c" "$i" "$usage" "$fee" "$from" "$to" > "$OUT/tsc/$c-$i.claim.json"
    f="$OUT/tsc/$c-$i.json"
    "$EFSC" tsc propose --secret-key "$SK_provider" --verification-method "$DID_provider#key-1" --tcc "$DID_tcc" "$OUT/tsc/$c-$i.claim.json" \
      | "$EFSC" tsc countersign --secret-key "${!s}" --verification-method "${!d}#key-1" "${DOCS[@]}" - \
      | "$EFSC" tsc issue --secret-key "$SK_tcc" --verification-method "$DID_tcc#key-1" "${DOCS[@]}" - > "$f" || { bad "settlement $c #$i"; continue; }
    printf '\r  %s: settlement %d/%d' "$c" "$i" "$SETTLEMENTS"
  done
  echo
done

echo "-- 5. every TSC re-verified independently (generic W3C proof check + Eq. 1/2)"
n=0; for f in "$OUT"/tsc/consumer?-*[0-9].json; do
  if "$EFSC" vc verify "${DOCS[@]}" "$f" >/dev/null && "$EFSC" tsc verify "${DOCS[@]}" --trusted-tcc "$DID_tcc" "$f" >/dev/null; then n=$((n+1)); else bad "verify $f"; fi
done
[ "$n" -eq $((2*SETTLEMENTS)) ] && ok "$n TSCs verified" || bad "only $n of $((2*SETTLEMENTS)) TSCs verified"

echo "-- 6. a forged settlement is caught"
sed 's/"fee": *[0-9.e-]*/"fee": 0.01/' "$OUT/tsc/consumer1-1.json" > "$OUT/forged-tsc.json"
if out=$("$EFSC" tsc verify "${DOCS[@]}" "$OUT/forged-tsc.json"); then bad "forged TSC accepted"; else ok "forged fee rejected: $(echo "$out" | tail -1)"; fi

echo "-- 7. on chain: a local broker and a 4-node PBFT devnet"
DEV="$OUT/devnet"
"$EFSC" devnet init --dir "$DEV" --network demo >/dev/null && "$EFSC" devnet up --dir "$DEV" >/dev/null && ok "broker and 4 nodes up" || bad "devnet up (see $DEV/node1/node.log)"
trap '"$EFSC" devnet down --dir "$DEV" >/dev/null 2>&1' EXIT
BROKER="mqtt://127.0.0.1:$(grep -o '"brokerPort": *[0-9]*' "$DEV/network.json" | grep -o '[0-9]*$')"
for who in provider consumer1 consumer2; do
  d="DID_$who"; s="SK_$who"
  check "$who's DID registered on the identity chain" "$EFSC" did register --broker "$BROKER" --log "$OUT/dids/$who.log.json" --secret-key "${!s}" --did "${!d}"
  "$EFSC" chain did resolve --broker "$BROKER" "${!d}" > "$OUT/dids/$who.onchain.json" 2>/dev/null || bad "resolve $who from the chain"
done
check "provider's template registered" "$EFSC" template register --broker "$BROKER" --secret-key "$SK_provider" --did "$DID_provider" "$OUT/templates/tit-time-of-day.json"
check "offer published (8 × A100)" "$EFSC" offer publish --broker "$BROKER" --secret-key "$SK_provider" --did "$DID_provider" \
  --offer-id a100 --resource-type gpu --model A100-80G --memory-gib 80 --unit-price 12.5 --capacity 8
if "$EFSC" offer match --broker "$BROKER" --resource-type gpu --quantity 2 --duration-hours 1 --json > "$OUT/match.json" && grep -q a100 "$OUT/match.json"; then
  ok "matchmaking finds the offer"
else bad "matchmaking"; fi
for c in consumer1 consumer2; do
  d="DID_$c"; s="SK_$c"
  if out=$("$EFSC" tic record --broker "$BROKER" --secret-key "${!s}" --did "${!d}" --offer-id a100 "$OUT/tic/$c.tic.json"); then ok "$c: $out"; else bad "$c: TIC not recorded: $out"; fi
done
"$EFSC" devnet status --dir "$DEV" | sed 's/^/  /'
"$EFSC" devnet down --dir "$DEV" >/dev/null && ok "devnet stopped"
trap - EXIT

echo "-- 8. issuance benchmark (paper Table II; 1 s per size)"
"$EFSC" bench issue --claim-bytes 1024,2048,4096 --seconds 1 --rounds 3 | sed 's/^/  /'

echo
echo "== summary: $pass passed, $fail failed; artifacts in $OUT/"
[ "$fail" -eq 0 ]
