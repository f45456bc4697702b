#!/usr/bin/env bash
# Synthesises the demo calls with espeak-ng and sox: two-speaker stereo WAVs, 16 kHz s16,
# channel 0 = customer, channel 1 = agent.
#   demo/demo-call.wav  the customer grows louder, faster and higher and asks to cancel and
#                       for a supervisor; the agent stays calm.
#   demo/calm-call.wav  a friendly call: nothing should alert.
#   demo/empathy-ack.wav, demo/empathy-dismiss.wav  the same customer lines (a double charge,
#                       "ridiculous", "cancel my account"); one agent apologises, acknowledges
#                       and takes ownership, the other says "calm down" and "that's our policy".
# Usage: tools/make-demo-call.sh [OUT_DIR [NAME.wav...]]   (default demo/, every call; with
# names, only those are written — the noise floor is random, so rebuilding changes a file)
set -euo pipefail
out=${1:-demo}
shift || true
only=("$@")
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
  if [ ${#only[@]} -gt 0 ] && [[ ! " ${only[*]} " =~ " $name " ]]; then
    rm -f "$tmp/turns"; n=0; return
  fi
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

# The escalating call.
turn agent    140 40  90 "Thank you for calling Acme Telecom, my name is Sam. How can I help you today?"
turn customer 150 45  60 "Hi. I have a question about my bill this month."
turn agent    140 40  90 "Of course, I can help with that. Could you tell me what you see on the bill?"
turn customer 165 55  90 "I was charged twice for the same service, again."
turn agent    140 40  90 "I see. Let me look into that for you. One moment please."
turn customer 185 70 140 "This is the third time this has happened, and nobody has fixed it!"
turn agent    140 40  90 "I understand your frustration. I am checking the charges now."
turn customer 205 85 190 "No, this is ridiculous! I have been waiting for weeks! I want to cancel my account!"
turn agent    140 40  90 "I am sorry to hear that. Let me see what I can do for you."
turn customer 215 95 200 "I want to speak to your supervisor right now! This is completely unacceptable!"
turn agent    140 40  90 "Certainly. I will transfer you to my supervisor."
build demo-call.wav 0.7

# The calm call.
turn agent    140 40  90 "Thank you for calling Acme Telecom, my name is Sam. How can I help you today?"
turn customer 150 45  70 "Hi. I would like to check when my next bill is due."
turn agent    140 40  90 "Sure. Your next bill is due on the fifth of next month."
turn customer 150 45  70 "Great, thank you. And can I pay it online?"
turn agent    140 40  90 "Yes, you can pay it online or in the mobile app."
turn customer 150 45  70 "Perfect. That is all I needed. Thanks for your help."
turn agent    140 40  90 "You are welcome. Have a nice day."
build calm-call.wav 0.7

# The empathy pair: the same customer turns, two agents.
empathy_call() {
  local name=$1 a1=$2 a2=$3 a3=$4
  turn agent    140 40  90 "Thank you for calling Acme Telecom, my name is Sam. How can I help you today?"
  turn customer 150 45  70 "Hi. I have a question about my bill this month."
  turn agent    140 40  90 "Of course. What do you see on the bill?"
  turn customer 185 70 150 "I was charged twice for the same service, again. This is the third time, and it is ridiculous!"
  turn agent    140 40  90 "$a1"
  turn customer 195 80 170 "Nobody has fixed it. I am really angry, and I want to cancel my account!"
  turn agent    140 40  90 "$a2"
  turn customer 150 50  80 "Okay. Please send me a confirmation by email."
  turn agent    140 40  90 "$a3"
  build "$name" 0.7
}
empathy_call empathy-ack.wav \
  "I am so sorry about that. I understand how frustrating this must be." \
  "I will make sure the extra charge is refunded today, and I will fix the account myself." \
  "Of course. You will get the email within the hour. Thank you for your patience."
empathy_call empathy-dismiss.wav \
  "Please calm down. Those are the charges on your account." \
  "That is our policy. There is nothing I can do about it." \
  "You will get an email."
