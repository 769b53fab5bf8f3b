"""Generate the sample ShareGPT corpus of the embedded default (and larger ones for benchmarks).

    python data/sample/make_sample.py            # rewrites the two sample files next to this script

Conversations are assembled from hand-written topic banks: an opening question, answers made
of several facts, follow-up questions that refer back to the answer, and often a thanks at the
end: people announce their last question ("One last thing: ...") or thank the assistant before they
stop, so a simulator can learn when a conversation ends. ``mess=True`` adds what real exports contain: assistant turns as HTML, system
prompts, a non-alternating record, near and exact duplicates, other languages, unknown
speakers, non-string values and lines that are not JSON.
"""

from __future__ import annotations

import json
import random
import re
import sys
from pathlib import Path

TOPICS = {
    "python-lists": (
        [
            "How do I remove duplicates from a list in Python but keep the order?",
            "What's the cleanest way to dedupe a Python list while preserving order?",
            "I have a list with repeated items. How can I get the unique ones in their original order?",
        ],
        [
            "Since Python 3.7 dictionaries keep insertion order, so `list(dict.fromkeys(items))` removes duplicates and keeps the first occurrence of each item.",
            "A `set` is faster for membership tests, but converting to a set loses the order, so use it only for the 'seen' check inside a loop.",
            "If the items are unhashable, such as lists or dicts, you have to compare them one by one, which is quadratic in the worst case.",
            "For very large inputs, a generator that yields items not yet seen keeps memory low because it never builds a second full list.",
        ],
        [
            "What if the list contains dictionaries?",
            "Is `dict.fromkeys` faster than the loop with a set?",
            "Can you show the generator version?",
            "How would I do the same thing with pandas?",
            "Does this work in Python 3.6?",
        ],
        "```python\ndef unique(items):\n    seen = set()\n    for item in items:\n        if item not in seen:\n            seen.add(item)\n            yield item\n```",
    ),
    "sourdough": (
        [
            "My sourdough loaf came out flat and dense. What am I doing wrong?",
            "Why does my sourdough bread spread out instead of rising?",
            "Any tips for a sourdough that doesn't rise much in the oven?",
        ],
        [
            "A flat loaf usually means the dough was over-proofed: the gluten weakened and the gas escaped before baking.",
            "Your starter should reliably double within four to eight hours after feeding; if it doesn't, the dough will rise slowly.",
            "Shaping builds surface tension, and a tight outer skin helps the loaf hold its shape in the oven.",
            "Baking in a preheated Dutch oven traps steam for the first twenty minutes, which gives a much better oven spring.",
            "High-hydration doughs above 75% water are harder to handle; try 68 to 70% until the shaping feels easy.",
        ],
        [
            "How can I tell when the bulk fermentation is done?",
            "My kitchen is pretty cold, around 18°C. Does that change anything?",
            "Should I use bread flour or all-purpose flour?",
            "What does the poke test actually tell me?",
            "Can I proof it in the fridge overnight?",
        ],
        None,
    ),
    "git-rebase": (
        [
            "What's the difference between git merge and git rebase?",
            "When should I rebase instead of merging in git?",
            "Can you explain git rebase like I'm new to git?",
        ],
        [
            "`git merge` combines two branches with a merge commit and keeps the history exactly as it happened.",
            "`git rebase` replays your commits on top of another branch, which gives a linear history but rewrites commit ids.",
            "Never rebase commits that others have already pulled, because their history will no longer match yours.",
            "An interactive rebase (`git rebase -i`) lets you squash, reorder or reword commits before you open a pull request.",
            "If a rebase goes wrong, `git reflog` shows where your branch pointed before, and you can reset back to it.",
        ],
        [
            "How do I undo a rebase I just did?",
            "What does squashing commits mean?",
            "Is it safe to rebase my feature branch every day?",
            "What happens to conflicts during a rebase?",
            "Which one does your team usually prefer and why?",
        ],
        "```bash\ngit fetch origin\ngit rebase origin/main\n# fix conflicts, then\ngit add -A && git rebase --continue\n```",
    ),
    "marathon": (
        [
            "I want to run my first marathon in six months. How should I train?",
            "Is six months enough time to prepare for a marathon as a beginner?",
            "Can you help me plan training for my first marathon?",
        ],
        [
            "Most beginner plans build weekly mileage by no more than about 10% a week to avoid injury.",
            "The long run is the key session: build it gradually to around 30 to 32 kilometres three weeks before race day.",
            "Most of your running should feel easy, at a pace where you could hold a conversation.",
            "A taper of two to three weeks, with less volume but some race-pace running, lets your legs recover before the race.",
            "Practise your race-day nutrition on long runs, because a new gel on race day can upset your stomach.",
        ],
        [
            "How many days a week should I run?",
            "What should I eat the night before the race?",
            "My knees hurt after long runs. Should I be worried?",
            "Do I need special shoes?",
            "Is cross-training like cycling useful?",
        ],
        None,
    ),
    "email-tone": (
        [
            "Can you help me write a polite email asking my manager for a raise?",
            "How do I ask for a salary increase by email without sounding pushy?",
            "I need to email my boss about a pay rise. Where do I start?",
        ],
        [
            "Open by asking for a short meeting rather than negotiating the whole thing over email.",
            "Mention two or three concrete results from the last year, ideally with numbers.",
            "Research the market rate for your role so you can name a realistic figure if asked.",
            "Keep the tone appreciative and forward-looking: focus on the value you bring, not on personal needs.",
            "Close with a clear next step, such as proposing a time next week.",
        ],
        [
            "Can you make it shorter?",
            "Should I mention an offer from another company?",
            "What if my manager says there's no budget?",
            "Could you make the tone a bit more formal?",
            "Is it better to do this in person instead?",
        ],
        None,
    ),
    "sql-joins": (
        [
            "What's the difference between an INNER JOIN and a LEFT JOIN in SQL?",
            "When do I use LEFT JOIN instead of INNER JOIN?",
            "I keep getting fewer rows than expected after a join. Why?",
        ],
        [
            "An INNER JOIN returns only rows that have a match in both tables.",
            "A LEFT JOIN returns every row of the left table, with NULLs where the right table has no match.",
            "Filtering a LEFT JOIN's right table in the WHERE clause silently turns it into an INNER JOIN; put that condition in the ON clause instead.",
            "Joining on a non-unique key multiplies rows, so check the cardinality of both sides first.",
            "`COUNT(*)` counts NULL-padded rows too, while `COUNT(right.id)` counts only real matches.",
        ],
        [
            "Can you give an example with customers and orders?",
            "What about FULL OUTER JOIN?",
            "Why did my row count go up after the join?",
            "Is there a performance difference between them?",
            "How do I find customers with no orders?",
        ],
        "```sql\nSELECT c.name, COUNT(o.id) AS orders\nFROM customers c\nLEFT JOIN orders o ON o.customer_id = c.id\nGROUP BY c.name;\n```",
    ),
    "houseplants": (
        [
            "The leaves of my monstera are turning yellow. What should I do?",
            "Why are my monstera leaves yellowing?",
            "My houseplant has yellow leaves at the bottom. Is it dying?",
        ],
        [
            "Yellow lower leaves are most often a sign of overwatering; let the top few centimetres of soil dry before watering again.",
            "Make sure the pot has drainage holes, because standing water rots the roots.",
            "An old leaf yellowing now and then is normal: the plant recycles nutrients from it.",
            "If the new leaves are pale too, the plant may need more light or a balanced fertiliser in spring and summer.",
            "Check the roots: healthy ones are firm and white, rotten ones are brown and mushy.",
        ],
        [
            "How often should I water it in winter?",
            "Should I cut the yellow leaves off?",
            "What kind of soil is best?",
            "Can I put it near a south-facing window?",
            "How do I repot it without hurting it?",
        ],
        None,
    ),
    "resume": (
        [
            "Can you review the summary section of my résumé?",
            "How do I write a good summary at the top of my CV?",
            "What should go in the profile section of a résumé?",
        ],
        [
            "A good summary is three or four lines that say who you are, what you're best at and what you're looking for.",
            "Lead with your strongest, most relevant result instead of a list of adjectives like 'hard-working'.",
            "Tailor it to each job: reuse the words of the posting where they honestly describe you.",
            "Numbers make claims concrete: 'cut reporting time by 40%' beats 'improved reporting'.",
            "Skip the objective statement; recruiters read the summary in a few seconds.",
        ],
        [
            "Here's mine: “Motivated engineer with 5 years’ experience in data pipelines.” How would you improve it?",
            "Should it be written in the first person?",
            "How long should the whole résumé be?",
            "Do I need a different summary for a career change?",
            "Is it okay to include hobbies?",
        ],
        None,
    ),
    "http-status": (
        [
            "What's the difference between HTTP 401 and 403?",
            "When should my API return 403 instead of 401?",
            "Which status code should I use when a user isn't allowed to see a resource?",
        ],
        [
            "401 Unauthorized means the request has no valid credentials: the client should authenticate and try again.",
            "403 Forbidden means the server knows who you are, but you're not allowed to do this.",
            "Some APIs return 404 instead of 403 so that they don't reveal that a private resource exists.",
            "A 401 response should include a `WWW-Authenticate` header that says how to authenticate.",
            "429 Too Many Requests is for rate limiting, and a `Retry-After` header tells the client when to come back.",
        ],
        [
            "What about an expired token?",
            "Should a wrong password return 401 or 400?",
            "How do I handle this on the client?",
            "Is 404 really better for private resources?",
            "What's the right code for a validation error?",
        ],
        None,
    ),
    "budget": (
        [
            "How do I start making a monthly budget? I never know where my money goes.",
            "What's a simple way to budget for someone who hates spreadsheets?",
            "I want to save more each month. How should I build a budget?",
        ],
        [
            "Start by tracking every expense for one month without changing anything, so you see where the money really goes.",
            "The 50/30/20 rule is a simple starting point: 50% needs, 30% wants, 20% savings and debt.",
            "Automate savings: move a fixed amount to a separate account on payday, before you can spend it.",
            "Review subscriptions; small monthly charges add up to a surprising amount over a year.",
            "Keep an emergency fund of three to six months of essential costs before investing.",
        ],
        [
            "What apps do people use for this?",
            "What if my rent is more than half my income?",
            "Should I pay off debt or save first?",
            "How do I stick to it when I get paid irregularly?",
            "Is the 50/30/20 rule realistic?",
        ],
        None,
    ),
    "docker": (
        [
            "Why is my Docker image so big?",
            "How can I make my Docker image smaller?",
            "My Python Docker image is 1.2 GB. Is that normal?",
        ],
        [
            "Start from a slim base image such as `python:3.12-slim` instead of the full one.",
            "A multi-stage build compiles in one stage and copies only the results into the final image.",
            "Each `RUN` line creates a layer, so clean package caches in the same `RUN` that installs the packages.",
            "A `.dockerignore` file keeps your virtual environment, `.git` and data files out of the build context.",
            "`pip install --no-cache-dir` avoids storing the wheel cache in the image.",
        ],
        [
            "What's the difference between slim and alpine?",
            "Can you show a multi-stage example?",
            "Does layer order matter for caching?",
            "How do I see which layer is the biggest?",
            "Should I pin versions in the Dockerfile?",
        ],
        "```dockerfile\nFROM python:3.12-slim AS build\nRUN pip install --no-cache-dir --prefix=/install -r requirements.txt\n\nFROM python:3.12-slim\nCOPY --from=build /install /usr/local\n```",
    ),
    "photosynthesis": (
        [
            "Can you explain photosynthesis simply? It's for my 10-year-old.",
            "How would you explain photosynthesis to a child?",
            "What's the easiest way to understand how plants make food?",
        ],
        [
            "Plants make their own food using sunlight, water from the soil and carbon dioxide from the air.",
            "The green colour comes from chlorophyll, which catches the energy in sunlight.",
            "The food they make is a kind of sugar, which the plant uses to grow.",
            "As a bonus, plants release oxygen, which is what we breathe.",
            "You can think of a leaf as a tiny kitchen where sunlight is the stove.",
        ],
        [
            "Why are leaves green and not black?",
            "Do plants breathe at night?",
            "Is there a fun experiment we could try at home?",
            "What happens to plants in autumn?",
            "Could you make it even simpler?",
        ],
        None,
    ),
    "travel-japan": (
        [
            "I'm visiting Japan for 10 days in April. What should I see?",
            "Can you suggest a 10-day Japan itinerary for a first visit?",
            "First time in Japan, 10 days. Tokyo and Kyoto only, or more?",
        ],
        [
            "Early April is cherry blossom season, so book accommodation well in advance.",
            "A common first trip is four days in Tokyo, three in Kyoto, one in Nara and two in Osaka.",
            "The Japan Rail Pass is worth it mainly if you travel long distances several times; check the current prices first.",
            "An IC card like Suica works on most trains and buses and in convenience stores.",
            "Many temples close around 5 pm, so plan them for mornings.",
        ],
        [
            "Is it easy to get around without speaking Japanese?",
            "What food should I try?",
            "Is Hiroshima worth a day trip?",
            "How much cash should I carry?",
            "Any etiquette mistakes to avoid?",
        ],
        None,
    ),
    "regex": (
        [
            "How do I write a regex that matches an email address?",
            "What's a good regular expression for emails?",
            "My regex for validating emails rejects valid addresses. Help?",
        ],
        [
            "A fully correct email regex is enormous; in practice, check for one `@` with something on both sides and a dot in the domain.",
            "`^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$` is a reasonable pragmatic pattern.",
            "The only real validation is sending a confirmation email to the address.",
            "Remember that the part before the `@` may contain `+`, dots and other characters.",
            "Anchor the pattern with `^` and `$` or it will match inside longer strings.",
        ],
        [
            "Why is the full regex so long?",
            "How do I test it in Python?",
            "What about international domain names?",
            "Can I use the same pattern in JavaScript?",
            "What does the `\\s` mean?",
        ],
        '```python\nimport re\nEMAIL = re.compile(r"^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$")\nprint(bool(EMAIL.match("ana+news@example.org")))\n```',
    ),
    "sleep": (
        [
            "I wake up at 3am every night and can't fall back asleep. Any advice?",
            "How can I stop waking up in the middle of the night?",
            "What can I do about insomnia without taking pills?",
        ],
        [
            "Keep the same wake-up time every day, even on weekends; it anchors your body clock.",
            "If you're awake for more than about twenty minutes, get up and do something calm in dim light until you feel sleepy.",
            "Caffeine has a half-life of around five hours, so an afternoon coffee can still affect you at night.",
            "Alcohol helps you fall asleep but fragments sleep in the second half of the night.",
            "If it goes on for months, cognitive behavioural therapy for insomnia (CBT-I) is the best-studied treatment, and a doctor can refer you.",
        ],
        [
            "Does melatonin help?",
            "Is it bad to look at my phone when I wake up?",
            "Should I nap during the day?",
            "What temperature should the bedroom be?",
            "How long until a new routine works?",
        ],
        None,
    ),
    "linear-regression": (
        [
            "Can you explain linear regression and how to interpret the coefficients?",
            "What does a coefficient in linear regression actually mean?",
            "How do I read the output of a linear regression?",
        ],
        [
            "Linear regression fits a straight line (or plane) that minimises the sum of squared errors between predictions and data.",
            "A coefficient is the expected change in the outcome for a one-unit change in that feature, holding the others fixed.",
            "R² tells you the share of variance the model explains, but a high R² doesn't mean the model is right.",
            "Correlated features make individual coefficients unstable even when predictions are fine.",
            "Always plot the residuals: patterns in them mean the linear form is missing something.",
        ],
        [
            "What's a p-value in this context?",
            "Should I standardise the features first?",
            "How do I handle a categorical variable?",
            "What if the relationship looks curved?",
            "Can you show it with scikit-learn?",
        ],
        "```python\nfrom sklearn.linear_model import LinearRegression\nmodel = LinearRegression().fit(X, y)\nprint(model.coef_, model.intercept_)\n```",
    ),
    "guitar": (
        [
            "I'm 35 and want to learn guitar. Acoustic or electric?",
            "Is it too late to learn guitar in my thirties?",
            "What's the best way for an adult beginner to learn guitar?",
        ],
        [
            "It's never too late: adults often progress faster at first because they practise deliberately.",
            "Electric guitars have lighter strings and are easier on the fingertips; acoustics are simpler to pick up and play anywhere.",
            "Fifteen minutes every day beats two hours once a week.",
            "Learn a few open chords, such as G, C, D and E minor, and you can already play hundreds of songs.",
            "A teacher for the first few lessons helps you avoid bad habits in posture and fretting.",
        ],
        [
            "My fingertips hurt. Is that normal?",
            "How long until I can play a full song?",
            "Which songs are good for beginners?",
            "Do I need to learn to read music?",
            "How do I switch chords faster?",
        ],
        None,
    ),
    "climate": (
        [
            "What's the difference between weather and climate?",
            "If it's cold this winter, does that mean global warming isn't real?",
            "How do scientists know the climate is changing?",
        ],
        [
            "Weather is what happens on a given day; climate is the pattern of weather over decades.",
            "A single cold winter is weather; the trend in global average temperature over many years is climate.",
            "Measurements come from thermometers, satellites, ocean buoys and ice cores that record the past.",
            "The warming since the late 1800s is about 1.2 °C globally, and it is faster over land and in the Arctic.",
            "Climate models are checked against the past: they must reproduce the temperatures we have already measured.",
        ],
        [
            "What are ice cores exactly?",
            "Why is the Arctic warming faster?",
            "What can one person actually do?",
            "How reliable are the models?",
            "Is 1.2 degrees really a big deal?",
        ],
        None,
    ),
    "react-state": (
        [
            "Why doesn't my React component update when I change the array in state?",
            "I push to an array in useState and nothing re-renders. Why?",
            "React state isn't updating after I modify an object. What am I missing?",
        ],
        [
            "React compares state by reference, so mutating the same array with `push` doesn't trigger a re-render.",
            "Create a new array instead: `setItems([...items, newItem])`.",
            "For objects, spread the old one into a new one: `setUser({...user, name})`.",
            "State updates are asynchronous; if the new value depends on the old one, use the functional form `setCount(c => c + 1)`.",
            "Libraries like Immer let you write mutating code that produces new objects under the hood.",
        ],
        [
            "What about nested objects?",
            "Why is the functional form safer?",
            "Should I use useReducer instead?",
            "Does the same thing apply to Vue?",
            "How do I remove an item from the array?",
        ],
        "```jsx\nconst [items, setItems] = useState([]);\nconst add = item => setItems(prev => [...prev, item]);\n```",
    ),
    "cover-letter": (
        [
            "Do I still need a cover letter in 2024?",
            "Are cover letters still read by recruiters?",
            "How long should a cover letter be?",
        ],
        [
            "Many recruiters skip them, but for smaller companies and competitive roles a good one still helps.",
            "Keep it under one page: three or four short paragraphs.",
            "Don't repeat your résumé; explain why this company and this role, and give one story that shows fit.",
            "Address it to a person when you can find the hiring manager's name.",
            "If the application says a cover letter is optional, a short, specific one is still better than none.",
        ],
        [
            "Can you show me an opening line that isn't boring?",
            "Should I mention salary expectations?",
            "What about a career gap?",
            "Can I reuse one letter for several jobs?",
            "Is it OK to send it as the email body?",
        ],
        None,
    ),
}

CONTEXTS = [
    "",
    "",
    "Quick question.",
    "Hi!",
    "I've been stuck on this all week.",
    "This is for a work project.",
    "My friend and I disagree about this.",
    "I'm a complete beginner here.",
    "Sorry if this is a basic question.",
    "Long-time lurker, first question.",
    "Hoping you can help me out.",
    "Asking for my sister.",
    "I need to sort this out before tomorrow morning.",
    "I read a few blog posts but they contradict each other.",
    "Hello there 👋",
    "OK so here's my situation.",
    "Random one for you today.",
]
DETAILS = [
    "",
    "",
    "Please keep it simple.",
    "A short answer is fine.",
    "I'd like to understand why, not just how.",
    "Examples would help.",
    "Thanks in advance!",
    "I already searched online but got confused.",
    "Explain it like I'm five, please.",
    "Bullet points would be great.",
    "What do most people get wrong here?",
    "I'm on a tight budget, if that matters.",
    "Assume I know the basics.",
]
CLOSINGS = [
    "Thanks, that's really helpful!",
    "Perfect, that answers my question. Thank you!",
    "Great, I'll try that. Thanks a lot 🙏",
    "Got it, thanks!",
    "That makes sense now — thank you so much!",
]
CLOSING_REPLIES = [
    "You're welcome! Good luck, and feel free to come back if you have more questions.",
    "Glad it helped! Let me know how it goes.",
    "Happy to help — enjoy!",
]
INTROS = [
    "Good question.",
    "Sure!",
    "Here's the short version.",
    "There are a few things to check.",
    "Happy to help with that.",
    "",
]
# How people announce their last question: the simulator can learn when a conversation is about to end.
LAST_QUESTION = ["One last thing:", "Last question:", "Final question:", "One more and then I'm done:"]
LINKS = ["Does that make sense?", "Let me know if you want more detail on any of these.", "", ""]

OTHER_LANGUAGES = [
    (
        "¿Cómo puedo mejorar mi pronunciación en inglés?",
        "Escucha a hablantes nativos todos los días, repite frases en voz alta y grábate para comparar. Practicar un poco cada día funciona mejor que estudiar mucho de vez en cuando.",
        "¿Qué podcasts me recomiendas?",
        "Para empezar, busca podcasts para estudiantes con transcripciones, así puedes leer mientras escuchas y repetir las frases difíciles.",
    ),
    (
        "Comment préparer une bonne pâte à crêpes ?",
        "Mélangez 250 g de farine, 4 œufs et 50 cl de lait petit à petit pour éviter les grumeaux, puis laissez reposer la pâte une heure au réfrigérateur.",
        "Je peux la faire la veille ?",
        "Oui, elle se conserve très bien jusqu'au lendemain au frais ; mélangez-la simplement avant de l'utiliser.",
    ),
    (
        "Wie lange sollte ich Nudeln kochen?",
        "Die meisten getrockneten Nudeln brauchen acht bis zwölf Minuten in reichlich gesalzenem, sprudelnd kochendem Wasser. Probieren Sie eine Minute vor Ende der angegebenen Zeit.",
        "Und frische Nudeln?",
        "Frische Nudeln sind viel schneller fertig, meist nach zwei bis vier Minuten, sobald sie an die Oberfläche steigen.",
    ),
    (
        "如何提高学习效率？",
        "建议你制定明确的学习计划，每学习二十五分钟休息五分钟，并且定期复习已经学过的内容。睡眠充足也非常重要。",
        "有没有推荐的复习方法？",
        "可以试试间隔重复：第一天、第三天、第七天分别复习一次，这样记得更牢。",
    ),
]


def _answer(rng: random.Random, facts: list[str], code: str | None, n_facts: int) -> str:
    chosen = rng.sample(facts, min(n_facts, len(facts)))
    parts = [p for p in (rng.choice(INTROS),) if p]
    if rng.random() < 0.4:
        parts.append("\n".join(f"{i}. {fact}" for i, fact in enumerate(chosen, 1)))
    else:
        parts.append(" ".join(chosen))
    if code and rng.random() < 0.5:
        parts.append(code)
    link = rng.choice(LINKS)
    if link:
        parts.append(link)
    return "\n\n".join(parts)


def _html(text: str) -> str:
    """Render an answer as a ShareGPT export does: HTML inside a markdown div."""
    blocks = []
    for part in re.split(r"(```.*?```)", text, flags=re.DOTALL):
        if part.startswith("```"):
            code = part.split("\n", 1)[1].rsplit("```", 1)[0]
            blocks.append(f"<pre><code>{code.replace('<', '&lt;').replace('>', '&gt;')}</code></pre>")
            continue
        for block in filter(None, (b.strip() for b in part.split("\n\n"))):
            if block[:2] == "1.":
                items = "".join(f"<li>{line.split('. ', 1)[1]}</li>" for line in block.splitlines())
                blocks.append(f"<ol>{items}</ol>")
            else:
                blocks.append(f"<p>{block}</p>")
    return '<div class="markdown prose w-full break-words"><p></p>' + "".join(blocks) + "</div>"


def conversation(rng: random.Random, index: int) -> dict:
    name = rng.choice(sorted(TOPICS))
    openings, facts, followups, code = TOPICS[name]
    opening = " ".join(p for p in (rng.choice(CONTEXTS), rng.choice(openings), rng.choice(DETAILS)) if p)
    turns = [
        {"from": "human", "value": opening},
        {"from": "gpt", "value": _answer(rng, facts, code, rng.randint(2, 4))},
    ]
    questions = rng.sample(followups, rng.choice([0, 1, 1, 2, 2, 3, 4]))
    if questions and rng.random() < 0.8:  # most people say when they ask their last question
        questions[-1] = f"{rng.choice(LAST_QUESTION)} {questions[-1][0].lower()}{questions[-1][1:]}"
    for question in questions:
        turns += [
            {"from": "human", "value": question},
            {"from": "gpt", "value": _answer(rng, facts, code, rng.randint(1, 3))},
        ]
    if rng.random() < 0.6:  # thanks, and the answer to it: the conversation is over
        turns.append({"from": "human", "value": rng.choice(CLOSINGS)})
        if rng.random() < 0.9:
            turns.append({"from": "gpt", "value": rng.choice(CLOSING_REPLIES)})
    return {"id": f"{name}-{index:06d}", "conversations": turns}


def generate(n: int, seed: int = 0, mess: bool = True) -> list[str]:
    """``n`` ShareGPT records as JSONL lines; with ``mess`` some are messy, duplicated, foreign or broken."""
    rng = random.Random(seed)
    items: list = [conversation(rng, i) for i in range(n)]
    if not mess:
        return [json.dumps(item, ensure_ascii=False) for item in items]
    for item in rng.sample(items, n // 5):  # exported HTML
        for turn in item["conversations"]:
            if turn["from"] == "gpt":
                turn["value"] = _html(turn["value"])
    for item in rng.sample(items, n // 25):  # a system prompt, and other speaker names
        item["conversations"].insert(0, {"from": "system", "value": "You are a helpful, concise assistant."})
        for turn in item["conversations"]:
            turn["from"] = {"human": "user", "gpt": rng.choice(["chatgpt", "assistant", "bard"])}.get(
                turn["from"], turn["from"]
            )
    for item in rng.sample(items, n // 40):  # a split message: consecutive human turns to merge
        first = item["conversations"][0]
        item["conversations"][0:1] = [
            {"from": "human", "value": first["value"]},
            {"from": "human", "value": "(sorry, hit enter too early) Any ideas?"},
        ]
    broken = rng.sample(items, 3)  # still not alternating after merging: a turn from the wrong side
    for item in broken:
        item["conversations"].insert(1, {"from": "system", "value": "Note: the user switched devices."})
    for item in rng.sample(items, n // 50):  # starts with an assistant greeting
        item["conversations"].insert(0, {"from": "gpt", "value": "Hi! How can I help you today?"})
    for i, (q, a, q2, a2) in enumerate(OTHER_LANGUAGES * max(1, n // 100)):
        items.append(
            {
                "id": f"foreign-{i:04d}",
                "conversations": [
                    {"from": "human", "value": q},
                    {"from": "gpt", "value": a},
                    {"from": "human", "value": q2},
                    {"from": "gpt", "value": a2},
                ],
            }
        )
    for item in rng.sample(items[:n], n // 20):  # exact and near duplicates
        copy = json.loads(json.dumps(item))
        copy["id"] += "-dup"
        if rng.random() < 0.5:
            copy["conversations"][0]["value"] = copy["conversations"][0]["value"].upper() + "  "
        items.append(copy)
    unusable = [  # each one a reason prepare rejects a record for
        {"id": "empty-turns", "conversations": []},
        {"id": "too-short", "conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "Hello!"}]},
        {"id": "only-question", "conversations": [{"from": "human", "value": "What is the capital of Australia?"}]},
        {"id": "no-turns-key", "messages": [{"role": "user", "content": "hello"}]},
        {
            "id": "number-value",
            "conversations": [{"from": "human", "value": 42}, {"from": "gpt", "value": "The answer."}],
        },
        {
            "id": "new-speaker",
            "conversations": [
                {"from": "narrator", "value": "It was a dark night."},
                {"from": "gpt", "value": "Go on."},
            ],
        },
        {
            "id": "blocked",
            "conversations": [
                {"from": "human", "value": "Tell me about yourself, honestly, in detail."},
                {"from": "gpt", "value": "As an AI language model, I do not have personal experiences."},
            ],
        },
    ]
    items += unusable
    rng.shuffle(items)
    lines: list = [json.dumps(item, ensure_ascii=False) for item in items]
    kept_whole = {i for i, item in enumerate(items) if item in unusable}  # so that each reason stays in the sample
    for pos in rng.sample(range(len(lines)), 4):  # lines that are not JSON
        while pos in kept_whole:
            pos = (pos + 1) % len(lines)
        lines[pos] = lines[pos][: len(lines[pos]) // 2]
    lines.insert(rng.randrange(len(lines)), "this line is not JSON at all")
    return lines


def main(directory: Path) -> None:
    lines = generate(400, seed=7)
    (directory / "sharegpt_sample.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    # A second file as one JSON array with HTML answers, the format of raw ShareGPT dumps.
    array = [conversation(random.Random(1000 + i), 10_000 + i) for i in range(60)]
    for item in array:
        for turn in item["conversations"]:
            if turn["from"] == "gpt":
                turn["value"] = _html(turn["value"])
    (directory / "sharegpt_sample_array.json").write_text(
        json.dumps(array, ensure_ascii=False, indent=1) + "\n", encoding="utf-8"
    )
    # One line of invalid UTF-8 in the JSONL file.
    with (directory / "sharegpt_sample.jsonl").open("ab") as f:
        f.write(b'{"id": "latin1", "conversations": [{"from": "human", "value": "caf\xe9?"}]}\n')


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent)
