"""The labelled task set for ``orchestrator bench routing``: 132 short tasks with checkable answers.

Four kinds, each with a few-shot raw completion prompt (no chat template: gemma3-270m is a base
model) that asks for a one-line answer, cut at the first newline:

- ``fact``: 40 questions, half very common (capital of France), half obscure (capital of Bhutan);
  normalised exact match against accepted spellings;
- ``arithmetic``: 32 sums and products from one-digit additions to two-digit multiplications,
  generated from a fixed seed; numeric match;
- ``extraction``: 30 sentences with a question about something in them (a city, a name, a year,
  an amount); normalised exact match;
- ``classification``: 30 texts, review sentiment (positive/negative) or headline topic (sports,
  science, business, politics); one of the labels.

The wording is ours. ``check(task, text)`` judges an answer; nothing here runs a model.
"""

from __future__ import annotations

import random
import re
import unicodedata
from dataclasses import dataclass

__all__ = ["KINDS", "TASKS", "Task", "check", "normalise", "prompt_for"]

KINDS = ("fact", "arithmetic", "extraction", "classification")


@dataclass(frozen=True)
class Task:
    """One task. ``answers`` are the accepted answers (any one is right); ``level`` is our guess
    of its difficulty (``easy``/``hard``), reported per level, never shown to a router."""

    id: str
    kind: str
    body: str
    answers: tuple[str, ...]
    level: str
    labels: tuple[str, ...] = ()


# -- few-shot prompts ----------------------------------------------------------------------
_PREFIX = {
    "fact": (
        "Answer each question with a few words.\n\n"
        "Question: What is the capital of Canada?\nAnswer: Ottawa\n\n"
        "Question: Who painted the Mona Lisa?\nAnswer: Leonardo da Vinci\n\n"
        "Question: What gas do plants take in from the air?\nAnswer: carbon dioxide\n\n"
    ),
    "arithmetic": "Compute each result.\n\n4 + 3 = 7\n12 + 9 = 21\n6 * 7 = 42\n25 + 38 = 63\n13 * 4 = 52\n",
    "extraction": (
        "Answer each question with words from the sentence.\n\n"
        "Sentence: Paolo moved to Vienna in 2011 to study music.\nQuestion: Which city did Paolo move to?\nAnswer: Vienna\n\n"
        "Sentence: The invoice from Harlow Printing came to 340 euros.\nQuestion: How much was the invoice?\nAnswer: 340 euros\n\n"
        "Sentence: Dr. Amira Haddad opened the clinic on a Tuesday.\nQuestion: Who opened the clinic?\nAnswer: Amira Haddad\n\n"
    ),
    "sentiment": (
        "Label each review as positive or negative.\n\n"
        "Review: The battery died after two days and support never replied.\nLabel: negative\n\n"
        "Review: Lovely staff, and the soup was the best I have had in years.\nLabel: positive\n\n"
        "Review: It broke the first time I used it.\nLabel: negative\n\n"
    ),
    "topic": (
        "Label each headline as sports, science, business or politics.\n\n"
        "Headline: Striker scores twice as United win the derby\nLabel: sports\n\n"
        "Headline: Astronomers find water vapour on a distant planet\nLabel: science\n\n"
        "Headline: Parliament passes the new budget after a long debate\nLabel: politics\n\n"
        "Headline: Shares of the chip maker jump after strong sales\nLabel: business\n\n"
    ),
}
SENTIMENT = ("positive", "negative")
TOPICS = ("sports", "science", "business", "politics")


def prompt_for(task: Task) -> str:
    """The raw completion prompt; the answer is the text up to the first newline."""
    if task.kind == "fact":
        return f"{_PREFIX['fact']}Question: {task.body}\nAnswer:"
    if task.kind == "arithmetic":
        return f"{_PREFIX['arithmetic']}{task.body} ="
    if task.kind == "extraction":
        sentence, question = task.body.split(" | ")
        return f"{_PREFIX['extraction']}Sentence: {sentence}\nQuestion: {question}\nAnswer:"
    if task.labels == SENTIMENT:
        return f"{_PREFIX['sentiment']}Review: {task.body}\nLabel:"
    return f"{_PREFIX['topic']}Headline: {task.body}\nLabel:"


# -- checking ---------------------------------------------------------------------------------
_ARTICLES = re.compile(r"\b(the|a|an)\b")
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")


def normalise(text: str) -> str:
    """Lower case, accents and punctuation dropped, articles removed, spaces collapsed."""
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    text = re.sub(r"[^a-z0-9 ]", " ", text.lower())
    return " ".join(_ARTICLES.sub(" ", text).split())


def check(task: Task, text: str) -> bool:
    """Whether ``text`` (a model's answer line) answers ``task``."""
    line = text.strip().split("\n", 1)[0]
    if task.kind == "arithmetic":
        m = _NUMBER.search(line)
        return m is not None and abs(float(m.group().replace(",", "")) - float(task.answers[0])) < 1e-6
    if task.kind == "classification":
        # the first label word in the answer decides
        words = [w for w in normalise(line).split() if w in task.labels]
        return bool(words) and words[0] == task.answers[0]
    got = normalise(line)
    return any(got == normalise(a) for a in task.answers)


# -- the tasks ----------------------------------------------------------------------------------
_FACTS_EASY = [
    ("What is the capital of France?", "Paris"),
    ("What is the capital of Italy?", "Rome"),
    ("What is the capital of Japan?", "Tokyo"),
    ("What is the capital of Germany?", "Berlin"),
    ("What is the capital of Spain?", "Madrid"),
    ("What is the capital of England?", "London"),
    ("What is the capital of Russia?", "Moscow"),
    ("What is the capital of Egypt?", "Cairo"),
    ("What is the largest planet in the solar system?", "Jupiter"),
    ("What planet do we live on?", "Earth|the Earth"),
    ("What colour is the sky on a clear day?", "blue"),
    ("How many days are in a week?", "seven|7"),
    ("What animal says moo?", "cow|a cow|cows"),
    ("What is frozen water called?", "ice"),
    ("Who wrote Romeo and Juliet?", "William Shakespeare|Shakespeare"),
    ("What is the opposite of hot?", "cold"),
    ("Which star is at the centre of our solar system?", "the Sun|Sun"),
    ("What language is spoken in Mexico?", "Spanish"),
    ("How many legs does a spider have?", "eight|8"),
    ("What is the capital of the United States?", "Washington|Washington D.C.|Washington, D.C.|Washington DC"),
]
_FACTS_HARD = [
    ("What is the capital of Bhutan?", "Thimphu"),
    ("What is the capital of Burkina Faso?", "Ouagadougou"),
    ("What is the capital of Kyrgyzstan?", "Bishkek"),
    ("What is the capital of Mongolia?", "Ulaanbaatar|Ulan Bator"),
    ("What is the capital of Paraguay?", "Asuncion|Asunción"),
    ("What is the capital of Eritrea?", "Asmara"),
    ("What is the capital of Tasmania?", "Hobart"),
    ("What is the capital of Slovenia?", "Ljubljana"),
    ("What is the chemical symbol for tungsten?", "W"),
    ("What is the chemical symbol for potassium?", "K"),
    ("Who wrote the novel The Master and Margarita?", "Mikhail Bulgakov|Bulgakov"),
    ("Who composed the opera The Magic Flute?", "Wolfgang Amadeus Mozart|Mozart"),
    ("In which year did the Berlin Wall fall?", "1989"),
    ("In which year did the Titanic sink?", "1912"),
    ("What is the smallest prime number?", "2|two"),
    ("What is the hardest natural mineral?", "diamond|diamonds"),
    ("Which planet has a moon called Titan?", "Saturn"),
    ("Which element has the atomic number 26?", "iron"),
    ("What is the longest river in South America?", "the Amazon|Amazon|Amazon River|the Amazon River"),
    ("Who was the first person to walk on the Moon?", "Neil Armstrong|Armstrong"),
]


def _arithmetic() -> list[tuple[str, str, str]]:
    """8 tasks each: one-digit sums, two-digit sums, three-digit sums, two-digit products."""
    rng = random.Random(20240611)
    out = []
    for level, lo, hi, op in (("easy", 1, 9, "+"), ("easy", 10, 99, "+"), ("hard", 100, 999, "+"), ("hard", 11, 99, "*")):
        for _ in range(8):
            a, b = rng.randint(lo, hi), rng.randint(lo, hi)
            out.append((f"{a} {op} {b}", str(a + b if op == "+" else a * b), level))
    return out


_EXTRACTION = [
    # (sentence | question, answers, level)
    ("Lena took the night train from Warsaw to Prague. | Which city did Lena travel to?", "Prague", "easy"),
    ("Our office in Nairobi opens at eight. | Where is the office?", "Nairobi|in Nairobi", "easy"),
    ("Tomas bought a red bicycle for his daughter. | What colour was the bicycle?", "red", "easy"),
    ("The meeting with Priya Natarajan was moved to Friday. | On which day is the meeting?", "Friday|on Friday", "easy"),
    ("Captain Rosa Alvarez landed the plane safely in the storm. | Who landed the plane?", "Rosa Alvarez|Captain Rosa Alvarez", "easy"),
    ("The bakery sold 120 loaves before noon. | How many loaves were sold?", "120|120 loaves", "easy"),
    ("Kenji adopted a grey cat named Miso. | What is the cat's name?", "Miso", "easy"),
    ("The bridge was finished in 1932 after six years of work. | When was the bridge finished?", "1932|in 1932", "easy"),
    ("Ines paid 45 dollars for the concert ticket. | How much did the ticket cost?", "45 dollars|45|$45", "easy"),
    ("The parcel from Oslo arrived on Monday morning. | Where did the parcel come from?", "Oslo|from Oslo", "easy"),
    ("Grandpa Walter planted three apple trees by the fence. | What kind of trees did he plant?", "apple|apple trees", "easy"),
    ("Sofia teaches chemistry at a school in Porto. | What subject does Sofia teach?", "chemistry", "easy"),
    ("The museum in Ghent keeps a painting by Jan van Eyck. | Which painter made the painting?", "Jan van Eyck|van Eyck", "easy"),
    ("Mr. Okafor signed the lease for the flat on Elm Street. | Who signed the lease?", "Mr. Okafor|Okafor|Mr Okafor", "easy"),
    ("The ferry to Split leaves at half past nine. | Where does the ferry go?", "Split|to Split", "easy"),
    ("After the match, Dana Whitfield thanked the referee, who had sent off two players. | Whom did Dana thank?", "the referee|referee", "hard"),
    ("Marco lent his car to Beatrice, who drove it to Turin and back. | Who drove to Turin?", "Beatrice", "hard"),
    ("The recipe asks for 250 grams of flour, twice as much sugar as butter, and 2 eggs. | How much flour does the recipe need?", "250 grams|250 grams of flour|250 g|250", "hard"),
    ("Although she was born in Lyon, Claire spent most of her life in Quebec. | Where was Claire born?", "Lyon|in Lyon", "hard"),
    ("Hassan's sister, Leila, works as an engineer in Dubai. | What is Hassan's sister's name?", "Leila", "hard"),
    ("The old lighthouse, rebuilt in 1874, stands on Gull Rock off the coast of Maine. | On which rock does the lighthouse stand?", "Gull Rock", "hard"),
    ("Nobody expected the quiet violinist, Anders Berg, to win the prize over the famous pianist. | Who won the prize?", "Anders Berg", "hard"),
    ("The flight was delayed from 14:10 to 16:45 because of fog in Dublin. | What time did the flight leave after the delay?", "16:45|at 16:45", "hard"),
    ("Ruth gave the blue scarf to Ada and kept the green one for herself. | Which scarf did Ruth keep?", "the green one|green|green scarf|the green scarf|green one", "hard"),
    ("The company, founded by Ola Nordmann in Bergen, later moved its headquarters to Stavanger. | Where are the headquarters now?", "Stavanger|in Stavanger", "hard"),
    ("Of the 40 students, 25 chose French and the rest chose German. | How many students chose French?", "25", "hard"),
    ("The letter, signed by the mayor, was delivered by a clerk named Petra Vos. | Who delivered the letter?", "Petra Vos|a clerk named Petra Vos|clerk Petra Vos", "hard"),
    ("Before becoming a chef, Luis worked as a pilot for twelve years. | What was Luis's job before he became a chef?", "pilot|a pilot", "hard"),
    ("The treaty was drafted in Geneva but signed in The Hague a year later. | Where was the treaty signed?", "The Hague|in The Hague|Hague", "hard"),
    ("Yusuf's brother Emre runs the shop that their father opened in 1987. | Who runs the shop?", "Emre|Yusuf's brother Emre", "hard"),
]

_SENTIMENT = [
    ("Absolutely loved it, would buy again.", "positive", "easy"),
    ("Terrible quality, a complete waste of money.", "negative", "easy"),
    ("The hotel was clean and the view was wonderful.", "positive", "easy"),
    ("Cold food, rude waiter, never again.", "negative", "easy"),
    ("Great sound and the headphones are very comfortable.", "positive", "easy"),
    ("The package arrived broken and the seller refused a refund.", "negative", "easy"),
    ("My kids enjoy this game every single evening.", "positive", "easy"),
    ("Awful. The screen flickers constantly.", "negative", "easy"),
    ("I expected to hate it, but it won me over by the second chapter.", "positive", "hard"),
    ("Not bad at all, though the price is steep.", "positive", "hard"),
    ("The photos made it look far nicer than it is.", "negative", "hard"),
    ("It does what it promises, no more and no less, and I am happy with that.", "positive", "hard"),
    ("I wanted to like this blender, I really did.", "negative", "hard"),
    ("Five stars for the packaging; the product itself stopped working in a week.", "negative", "hard"),
    ("Hard to fault, except that I wish I had bought it sooner.", "positive", "hard"),
    ("Returned it. Enough said.", "negative", "hard"),
]

_TOPIC = [
    ("Tennis champion retires after twenty years on tour", "sports", "easy"),
    ("New vaccine shows strong results in clinical trial", "science", "easy"),
    ("Central bank raises interest rates again", "business", "easy"),
    ("President meets prime minister to discuss border treaty", "politics", "easy"),
    ("Marathon record broken in Berlin", "sports", "easy"),
    ("Physicists observe a new particle at the collider", "science", "easy"),
    ("Retail giant reports record quarterly profit", "business", "easy"),
    ("Opposition party wins the regional election", "politics", "easy"),
    ("Coach sacked after a third straight loss at home", "sports", "hard"),
    ("Fossil of a feathered dinosaur unearthed in a quarry", "science", "hard"),
    ("Start-up raises forty million to build delivery robots", "business", "hard"),
    ("Senate committee delays vote on the climate bill", "politics", "hard"),
    ("Ministers clash over funding for the Olympic stadium", "politics", "hard"),
    ("Sponsorship deal makes the club the richest in the league", "sports", "hard"),
]


def _tasks() -> tuple[Task, ...]:
    tasks: list[Task] = []
    for level, rows in (("easy", _FACTS_EASY), ("hard", _FACTS_HARD)):
        for i, (q, a) in enumerate(rows):
            tasks.append(Task(f"fact-{level}-{i:02d}", "fact", q, tuple(a.split("|")), level))
    for i, (expr, value, level) in enumerate(_arithmetic()):
        tasks.append(Task(f"arith-{i:02d}", "arithmetic", expr, (value,), level))
    for i, (body, a, level) in enumerate(_EXTRACTION):
        tasks.append(Task(f"extract-{i:02d}", "extraction", body, tuple(a.split("|")), level))
    for i, (text, label, level) in enumerate(_SENTIMENT):
        tasks.append(Task(f"sentiment-{i:02d}", "classification", text, (label,), level, SENTIMENT))
    for i, (text, label, level) in enumerate(_TOPIC):
        tasks.append(Task(f"topic-{i:02d}", "classification", text, (label,), level, TOPICS))
    return tuple(tasks)


TASKS: tuple[Task, ...] = _tasks()
