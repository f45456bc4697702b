#!/usr/bin/env bash
# Scripted calls for the agent-assist measurements (README "Agent assist"), synthesised with
# espeak-ng and sox: two-speaker stereo WAVs, 16 kHz s16, channel 0 = customer, 1 = agent.
# Turns are placed in time relative to the end of the previous turn, so agents can talk over
# customers (negative offset) and leave dead air (a long positive one).
#   assist-interrupt.wav   the agent cuts in on the customer twice (expect let_finish)
#   assist-dead-air.wav    "let me check" and 12 s of silence (expect dead_air, then withdrawn)
#   assist-fast-agent.wav  the agent rattles off long answers at ~4.5 words/s (speaking_fast)
#   assist-unanswered.wav  an angry customer; the agent goes straight to procedure (acknowledge)
#   assist-calm-1..3.wav   routine calls in other voices and pacing (expect no nudge)
# Usage: tools/assist-eval/make-assist-calls.sh [OUT_DIR]   (default /tmp/assist-calls)
set -euo pipefail
out=${1:-/tmp/assist-calls}
for tool in espeak-ng sox soxi; do
  command -v "$tool" >/dev/null || { echo "make-assist-calls: $tool not found (apt-get install espeak-ng sox)" >&2; exit 2; }
done
mkdir -p "$out"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT

n=0; cursor=1.0; cvoice=en-us+f2; avoice=en-us+m3
# turn WHO OFFSET_S SPEED PITCH "TEXT"  — starts OFFSET_S after the previous turn ended.
turn() {
  local who=$1 off=$2 speed=$3 pitch=$4 text=$5 voice start d
  if [ "$who" = customer ]; then voice=$cvoice; else voice=$avoice; fi
  n=$((n + 1))
  espeak-ng -v "$voice" -s "$speed" -p "$pitch" -w "$tmp/raw$n.wav" "$text"
  sox -q "$tmp/raw$n.wav" -r 16000 -c 1 -b 16 "$tmp/t$n.wav"
  start=$(awk -v c="$cursor" -v o="$off" 'BEGIN { s = c + o; if (s < 0) s = 0; printf "%.3f", s }')
  d=$(soxi -D "$tmp/t$n.wav")
  sox -q "$tmp/t$n.wav" "$tmp/p$n.wav" pad "$start"
  echo "$who $tmp/p$n.wav" >> "$tmp/turns"
  cursor=$(awk -v s="$start" -v d="$d" 'BEGIN { printf "%.3f", s + d }')
}

# build NAME  — mixes the turns onto two channels with a faint line noise, then resets.
build() {
  local name=$1 len c=() a=() who f
  len=$(awk -v c="$cursor" 'BEGIN { printf "%.3f", c + 1.5 }')
  sox -q -n -r 16000 -c 1 -b 16 "$tmp/base.wav" trim 0 "$len"
  c+=("$tmp/base.wav"); a+=("$tmp/base.wav")
  while read -r who f; do
    if [ "$who" = customer ]; then c+=("$f"); else a+=("$f"); fi
  done < "$tmp/turns"
  for ch in c a; do
    local -n files=$ch
    if [ ${#files[@]} -gt 1 ]; then sox -q -m "${files[@]}" "$tmp/$ch.wav" trim 0 "$len"; else cp "$tmp/base.wav" "$tmp/$ch.wav"; fi
    sox -q "$tmp/$ch.wav" -p synth whitenoise vol 0.0008 | sox -q -m "$tmp/$ch.wav" - "$tmp/${ch}n.wav"
  done
  sox -q -M "$tmp/cn.wav" "$tmp/an.wav" -b 16 "$out/$name"
  rm -f "$tmp/turns"; n=0; cursor=1.0
  echo "$out/$name: $(soxi -D "$out/$name") s"
}

turn agent    0   170 50 "Thank you for calling Northwind Energy, this is Chris. How can I help?"
turn customer 0.6 165 50 "Hi, I moved house last month and I am still getting bills for the old address, and on top of that the new meter reading looks wrong to me because"
turn agent   -2.5 175 50 "Okay, so what is the account number?"
turn customer 0.5 165 50 "I was getting to that. The account number is on the letter, but the point is the reading on the new meter is much higher than what I actually used in the first two weeks"
turn agent   -3.0 175 50 "Right, readings are often estimated at first."
turn customer 0.6 165 50 "Yes, but I sent you a photo of the meter and nobody looked at it."
turn agent    0.7 170 50 "I see. I will check the photo and correct the reading today."
turn customer 0.6 165 50 "Thank you."
build assist-interrupt.wav

turn agent    0   170 50 "Good morning, Northwind Energy, Chris speaking."
turn customer 0.6 165 50 "Hello, I would like to know why my direct debit went up this month."
turn agent    0.7 170 50 "Let me check that for you."
turn agent   12.0 170 50 "Thanks for waiting. Your estimated usage was raised after the winter readings."
turn customer 0.6 165 50 "Oh I see, can you lower it again?"
turn agent    0.7 170 50 "Yes, I have set it back to the previous amount."
build assist-dead-air.wav

turn agent    0   290 50 "Thanks for calling Northwind Energy this is Chris how can I help you today with your account or your bill or anything else really."
turn customer 0.6 165 50 "Hi, I want to change my tariff to the fixed one."
turn agent    0.6 290 50 "Sure so the fixed tariff is twelve months at the same unit rate and there is an exit fee of thirty pounds per fuel if you leave early and the standing charge is also fixed and you can switch online or I can do it now for you."
turn customer 0.6 165 50 "Sorry, could you say that again more slowly?"
turn agent    0.6 290 50 "Yes so twelve months fixed same unit rate thirty pounds exit fee per fuel standing charge fixed and I can switch you right now on this call if you want me to go ahead with it."
turn customer 0.6 165 50 "Okay, go ahead."
build assist-fast-agent.wav

cvoice=en-us+f4
turn agent    0   170 50 "Northwind Energy, Chris speaking, how can I help?"
turn customer 0.5 200 75 "This is ridiculous. You cut off my gas while I was paying. I am furious and I want to cancel everything."
turn agent    0.8 170 50 "Can I have your account number please?"
turn customer 0.6 200 75 "It is four four one two. Why did this happen?"
turn agent    0.8 170 50 "One moment. The account shows a missed payment in October."
turn customer 0.6 200 75 "I paid it. This is unacceptable."
turn agent    0.8 170 50 "The reconnection takes two working days."
turn customer 0.6 190 70 "Two days without heating? Fine."
build assist-unanswered.wav

cvoice=en-gb+f3; avoice=en-us+m2
turn agent    0   165 45 "Northwind Energy, good afternoon, Alex speaking."
turn customer 0.8 150 40 "Hello, I would like to update my email address please."
turn agent    0.8 165 45 "Of course. What is the new address?"
turn customer 0.8 150 40 "It is sam dot jones at example dot com."
turn agent    0.8 165 45 "Thank you, that is updated. Anything else?"
turn customer 0.8 150 40 "No, that is all, thanks."
build assist-calm-1.wav

cvoice=en-us+m4; avoice=en-gb+f2
turn agent    0   170 55 "Hello, Northwind Energy, this is Priya."
turn customer 0.9 140 35 "Hi Priya. I am calling to give a meter reading."
turn agent    0.7 170 55 "Lovely, go ahead when you are ready."
turn customer 1.0 140 35 "It is four five six seven two."
turn agent    0.7 170 55 "Got it, four five six seven two. That is saved on your account."
turn customer 0.9 140 35 "Great. And when is my next bill?"
turn agent    0.7 170 55 "Your next bill is on the fifth of next month."
turn customer 0.9 140 35 "Perfect, thank you very much."
build assist-calm-2.wav

cvoice=en-us+f5; avoice=en-us+m1
turn agent    0   160 50 "Northwind Energy, Sam here."
turn customer 0.7 170 60 "Hi Sam, quick question about the app."
turn agent    0.7 160 50 "Sure, what is it?"
turn customer 0.7 170 60 "Where do I see my usage for last week?"
turn agent    0.7 160 50 "Open the usage tab and choose weekly at the top."
turn customer 2.5 170 60 "Found it. Thanks a lot."
turn agent    0.7 160 50 "You are welcome, have a nice day."
build assist-calm-3.wav
