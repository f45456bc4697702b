#!/usr/bin/env bash
# Synthesises calls in which the customer reads payment data the way people do (espeak-ng +
# sox, same layout as tools/make-demo-call.sh: stereo 16 kHz, channel 0 = customer, 1 = agent),
# for checking redaction end to end:  tools/make-pii-calls.sh OUT_DIR && \
#   for f in OUT_DIR/*.wav; do calltone replay "$f"; done | grep '"utterance"'
#   pii-asked.wav     the agent asks; card in two halves, expiry, CVV, date of birth answered
#   pii-halves.wav    card number in two halves with no question before it
#   pii-volunteer.wav card, IBAN and social security number volunteered in one go each
set -euo pipefail
out=${1:?usage: tools/make-pii-calls.sh OUT_DIR}
for tool in espeak-ng sox; do
  command -v "$tool" >/dev/null || { echo "make-demo-call: $tool not found (apt-get install espeak-ng sox)" >&2; exit 2; }
done
mkdir -p "$out"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT

# turn SPEAKER SPEED PITCH AMPLITUDE "TEXT"  — appends one turn to the current call.
n=0
turn() {
  local who=$1 speed=$2 pitch=$3 amp=$4 text=$5 voice
  if [ "$who" = customer ]; then voice=en-us+f2; else voice=en-us+m3; fi
  n=$((n + 1))
  espeak-ng -v "$voice" -s "$speed" -p "$pitch" -a "$amp" -w "$tmp/raw$n.wav" "$text"
  sox -q "$tmp/raw$n.wav" -r 16000 -c 1 -b 16 "$tmp/t$n.wav"
  echo "$who $tmp/t$n.wav" >> "$tmp/turns"
}

# build NAME GAP_S  — lays the turns out one after another on two channels.
build() {
  local name=$1 gap=$2 cust=() agent=() who f d
  sox -q -n -r 16000 -c 1 -b 16 "$tmp/gap.wav" trim 0 "$gap"
  sox -q -n -r 16000 -c 1 -b 16 "$tmp/lead.wav" trim 0 1.0
  cust+=("$tmp/lead.wav"); agent+=("$tmp/lead.wav")
  local i=0
  while read -r who f; do
    i=$((i + 1))
    d=$(soxi -D "$f")
    sox -q -n -r 16000 -c 1 -b 16 "$tmp/sil$i.wav" trim 0 "$d"
    if [ "$who" = customer ]; then cust+=("$f"); agent+=("$tmp/sil$i.wav")
    else agent+=("$f"); cust+=("$tmp/sil$i.wav"); fi
    cust+=("$tmp/gap.wav"); agent+=("$tmp/gap.wav")
  done < "$tmp/turns"
  sox -q "${cust[@]}" "$tmp/c.wav"
  sox -q "${agent[@]}" "$tmp/a.wav"
  # A faint noise floor on each line, as a real telephone line has (about −62 dBFS).
  for ch in c a; do
    sox -q "$tmp/$ch.wav" -p synth whitenoise vol 0.0008 | sox -q -m "$tmp/$ch.wav" - "$tmp/${ch}n.wav"
  done
  sox -q -M "$tmp/cn.wav" "$tmp/an.wav" -b 16 "$out/$name"
  rm -f "$tmp/turns"; n=0
  echo "$out/$name: $(soxi -D "$out/$name") s"
}

turn agent    140 40  90 "Thank you for calling Acme. To pay the balance, can I take the long number on the card please?"
turn customer 150 45  80 "Sure, it is four one one one, one one one one."
turn customer 150 45  80 "One one one one, one one one one."
turn agent    140 40  90 "Thank you. And the expiry date?"
turn customer 150 45  80 "Oh four, twenty seven."
turn agent    140 40  90 "And the three digit security code on the back?"
turn customer 150 45  80 "Seven three seven."
turn agent    140 40  90 "Lastly, can you confirm your date of birth?"
turn customer 150 45  80 "The fifth of March, nineteen eighty."
build pii-asked.wav 1.0

turn agent    140 40  90 "Thank you for calling Acme, how can I help?"
turn customer 150 45  80 "I want to pay my bill. It is five four two four."
turn customer 150 45  80 "Zero zero zero zero, zero zero zero zero, zero zero one five."
turn agent    140 40  90 "Thank you, that is done."
build pii-halves.wav 1.0

turn agent    140 40  90 "Thank you for calling Acme, how can I help?"
turn customer 150 45  80 "My visa number is 4532 0151 1283 0366."
turn customer 150 45  80 "For the refund my IBAN is G B 8 2, W E S T, 1 2 3 4, 5 6 9 8, 7 6 5 4, 3 2."
turn customer 150 45  80 "And my social security number is 123 45 6789."
turn agent    140 40  90 "Thank you, I have all of that."
build pii-volunteer.wav 1.0
