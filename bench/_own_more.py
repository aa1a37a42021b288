"""More held-out requests for tool calling: a second batch of the project's own held-out set.

96 requests written apart from any prompt, example or weight of the project (none of them is,
or paraphrases, a request of ``bench/tools.py``'s ``TASKS``, one of its ``EXAMPLES`` or a text of
``bench/_own_decisions.py``'s ``NO_TOOL``), over the 8 tools of ``bench/tools.py``:

- ``MORE_TASKS``: 72 requests, 9 per tool, each ``(text, tool_name, arguments)`` with the one
  call it needs; arguments not given take their defaults, and are scored like ``TASKS``
  (``bench/tools.py``'s ``call_is_correct``);
- ``MORE_NO_TOOL``: 24 requests that no tool fits (general knowledge, writing, advice,
  chit-chat), some of them close to a tool's topic but not something it can do (the euro's
  history, what a thermostat is, cancelling a flight, reading emails, stopping a timer).
"""

from __future__ import annotations

MORE_TASKS: tuple[tuple[str, str, dict], ...] = (
    # get_weather
    ("weather in Berlin", "get_weather", {"city": "Berlin"}),
    ("Hey, could you check what it's like outside in Buenos Aires at the moment?", "get_weather", {"city": "Buenos Aires"}),
    ("Is it snowing in Montreal?", "get_weather", {"city": "Montreal"}),
    ("Give me the current temperature in Phoenix, in fahrenheit please.", "get_weather", {"city": "Phoenix", "unit": "fahrenheit"}),
    ("Should I bring an umbrella in Amsterdam today?", "get_weather", {"city": "Amsterdam"}),
    ("Seattle weather, Fahrenheit.", "get_weather", {"city": "Seattle", "unit": "fahrenheit"}),
    ("My sister lives in Nairobi. How warm is it there today?", "get_weather", {"city": "Nairobi"}),
    ("Check the conditions in Reykjavik for me, thanks!", "get_weather", {"city": "Reykjavik"}),
    ("Is it windy in Wellington right now? Degrees in fahrenheit, please.", "get_weather", {"city": "Wellington", "unit": "fahrenheit"}),

    # convert_currency
    ("How much is 300 Swiss francs in US dollars?", "convert_currency", {"amount": 300, "source": "CHF", "target": "USD"}),
    ("convert 45 GBP to JPY", "convert_currency", {"amount": 45, "source": "GBP", "target": "JPY"}),
    ("I'm heading to Canada with 500 euros. What's that in Canadian dollars?", "convert_currency",
     {"amount": 500, "source": "EUR", "target": "CAD"}),
    ("10000 yen in British pounds?", "convert_currency", {"amount": 10000, "source": "JPY", "target": "GBP"}),
    ("What would 2,500 USD be in Swiss francs?", "convert_currency", {"amount": 2500, "source": "USD", "target": "CHF"}),
    ("Please convert eighty Canadian dollars into euros.", "convert_currency", {"amount": 80, "source": "CAD", "target": "EUR"}),
    ("How many US dollars do I get for 12.75 pounds sterling?", "convert_currency", {"amount": 12.75, "source": "GBP", "target": "USD"}),
    ("EUR to CHF, 640", "convert_currency", {"amount": 640, "source": "EUR", "target": "CHF"}),
    ("My rent is 1400 GBP a month. How much is that in euros?", "convert_currency", {"amount": 1400, "source": "GBP", "target": "EUR"}),

    # set_timer
    ("timer 12 min", "set_timer", {"minutes": 12}),
    ("Please start a timer for eight minutes.", "set_timer", {"minutes": 8}),
    ('Set a timer named "laundry" for 40 minutes.', "set_timer", {"minutes": 40, "label": "laundry"}),
    ("Could you put a 20 minute timer on for me?", "set_timer", {"minutes": 20}),
    ('Timer: 7 minutes, label it "noodles".', "set_timer", {"minutes": 7, "label": "noodles"}),
    ("I'm going to nap, wake me with a timer in 35 minutes.", "set_timer", {"minutes": 35}),
    ('Could you start a countdown of 60 minutes and call it "study session"?', "set_timer", {"minutes": 60, "label": "study session"}),
    ("2 minute timer please", "set_timer", {"minutes": 2}),
    ('Set a "bread" timer for 180 minutes.', "set_timer", {"minutes": 180, "label": "bread"}),

    # send_email
    ('Email grace@studio.dev, subject "Draft ready".', "send_email", {"to": "grace@studio.dev", "subject": "Draft ready"}),
    ('Please send an email to henry.liu@uni.edu with the subject "Office hours" and the message "Can we meet on Tuesday?"',
     "send_email", {"to": "henry.liu@uni.edu", "subject": "Office hours", "body": "Can we meet on Tuesday?"}),
    ('Shoot ivan@shop.co an email: subject "Order 118", body "Your order has shipped."', "send_email",
     {"to": "ivan@shop.co", "subject": "Order 118", "body": "Your order has shipped."}),
    ('Could you email julia@design.it? The subject should be "New logo".', "send_email", {"to": "julia@design.it", "subject": "New logo"}),
    ('mail kim@lab.org subject "Results" body "All tests passed."', "send_email",
     {"to": "kim@lab.org", "subject": "Results", "body": "All tests passed."}),
    ("I need to tell leo@team.io that I'm late. Send him an email with the subject \"Running late\" and write "
     '"I will be there at ten."', "send_email", {"to": "leo@team.io", "subject": "Running late", "body": "I will be there at ten."}),
    ('Send to mia@family.net: subject "Birthday", text "Happy birthday, Mia!"', "send_email",
     {"to": "mia@family.net", "subject": "Birthday", "body": "Happy birthday, Mia!"}),
    ('Send a quick note to noah@garage.com titled "Car service".', "send_email", {"to": "noah@garage.com", "subject": "Car service"}),
    ('Write an email to olivia@bank.co.uk, subject line "Account question".', "send_email",
     {"to": "olivia@bank.co.uk", "subject": "Account question"}),

    # search_flights
    ("flights Madrid to Barcelona", "search_flights", {"origin": "Madrid", "destination": "Barcelona"}),
    ("Can you find me a business class seat from Singapore to Hong Kong?", "search_flights",
     {"origin": "Singapore", "destination": "Hong Kong", "cabin": "business"}),
    ("We're a family of five flying from Toronto to Miami. What flights are there?", "search_flights",
     {"origin": "Toronto", "destination": "Miami", "passengers": 5}),
    ("Search first class from Dubai to London for two passengers.", "search_flights",
     {"origin": "Dubai", "destination": "London", "passengers": 2, "cabin": "first"}),
    ("Any flights out of Zurich going to Stockholm?", "search_flights", {"origin": "Zurich", "destination": "Stockholm"}),
    ("I want to fly to Rome from Amsterdam, 2 adults.", "search_flights", {"origin": "Amsterdam", "destination": "Rome", "passengers": 2}),
    ("Look for flights to Seoul, departing from Bangkok, for 6 people in business.", "search_flights",
     {"origin": "Bangkok", "destination": "Seoul", "passengers": 6, "cabin": "business"}),
    ("Show me what's flying from Mexico City to Los Angeles.", "search_flights", {"origin": "Mexico City", "destination": "Los Angeles"}),
    ("Need seven tickets from Frankfurt to Istanbul.", "search_flights", {"origin": "Frankfurt", "destination": "Istanbul", "passengers": 7}),

    # calculator
    ("what's 48 times 365", "calculator", {"expression": "48 * 365"}),
    ("Calculate 9 squared minus 4.", "calculator", {"expression": "9 ** 2 - 4"}),
    ("Divide 1000 by 8 and then add 3.", "calculator", {"expression": "1000 / 8 + 3"}),
    ("Subtract 289 from 1024.", "calculator", {"expression": "1024 - 289"}),
    ("What is 7 cubed?", "calculator", {"expression": "7 ** 3"}),
    ("We're splitting a bill of 186.40 between 4 people. How much does each pay?", "calculator", {"expression": "186.40 / 4"}),
    ("How many seconds are in 3 days?", "calculator", {"expression": "3 * 24 * 60 * 60"}),
    ("Average of 82, 91 and 77?", "calculator", {"expression": "(82 + 91 + 77) / 3"}),
    ("Compute the remainder when 1000 is divided by 7.", "calculator", {"expression": "1000 % 7"}),

    # set_thermostat
    ("office thermostat 21.5", "set_thermostat", {"room": "office", "temperature": 21.5}),
    ("Could you make the bedroom a bit cooler, say 17 degrees?", "set_thermostat", {"room": "bedroom", "temperature": 17}),
    ("Living room to twenty-two degrees please.", "set_thermostat", {"room": "living room", "temperature": 22}),
    ("It's freezing in the kitchen, crank it up to 25 degrees.", "set_thermostat", {"room": "kitchen", "temperature": 25}),
    ("Set the temperature in my office to 19 degrees Celsius.", "set_thermostat", {"room": "office", "temperature": 19}),
    ("We're going away for the week, drop the living room to 12 degrees.", "set_thermostat", {"room": "living room", "temperature": 12}),
    ("Please set the bedroom thermostat to 18.5°C.", "set_thermostat", {"room": "bedroom", "temperature": 18.5}),
    ("kitchen 20 degrees", "set_thermostat", {"room": "kitchen", "temperature": 20}),
    ("I'd like the office warmer: 23 degrees, thanks.", "set_thermostat", {"room": "office", "temperature": 23}),

    # book_table
    ("Book Osteria Roma for 2 at 7pm.", "book_table", {"restaurant": "Osteria Roma", "booking": {"people": 2, "time": "19:00"}}),
    ("table for four at The Anchor, 20:30", "book_table", {"restaurant": "The Anchor", "booking": {"people": 4, "time": "20:30"}}),
    ("Could you reserve a table at Little Saigon for 10 people at 18:00? It's for a birthday.", "book_table",
     {"restaurant": "Little Saigon", "booking": {"people": 10, "time": "18:00"}}),
    ("We'd like to eat at Pho House tonight at 19:15, just the two of us.", "book_table",
     {"restaurant": "Pho House", "booking": {"people": 2, "time": "19:15"}}),
    ("Please book Harbour Grill, 3 people, 13:30.", "book_table", {"restaurant": "Harbour Grill", "booking": {"people": 3, "time": "13:30"}}),
    ("Big group dinner: 12 of us at Tandoori Nights, 20:00 please.", "book_table",
     {"restaurant": "Tandoori Nights", "booking": {"people": 12, "time": "20:00"}}),
    ("Lunch at Cafe Central for one at 12:15?", "book_table", {"restaurant": "Cafe Central", "booking": {"people": 1, "time": "12:15"}}),
    ("Get me a booking at El Toro for six people at 9:30 pm.", "book_table", {"restaurant": "El Toro", "booking": {"people": 6, "time": "21:30"}}),
    ("Can I get a table at Noodle Bar at 18:30 for 5?", "book_table", {"restaurant": "Noodle Bar", "booking": {"people": 5, "time": "18:30"}}),
)

MORE_NO_TOOL: tuple[str, ...] = (
    "When was the euro introduced, and why?",
    "What does a thermostat actually do?",
    "Cancel my flight to Lisbon, please.",
    "How do I write a polite email asking for a raise?",
    "What's the difference between Celsius and Fahrenheit?",
    "Why do airlines overbook flights?",
    "Is it rude to leave no tip at a restaurant in Japan?",
    "Explain what inflation is in simple terms.",
    "What's a good recipe for banana bread?",
    "Who invented the calculator?",
    "Stop the timer I set earlier.",
    "What causes thunderstorms?",
    "Write a haiku about autumn leaves.",
    "How are you doing today?",
    "What's the tallest mountain in Africa?",
    "Can you recommend a Thai restaurant near me?",
    "Proofread this sentence: 'Their going to the park tomorow.'",
    "Give me a fun fact about octopuses.",
    "How should I prepare for a job interview?",
    "Read me my latest emails.",
    "What's the best time of year to visit Iceland?",
    "Thanks, that's all for now!",
    "Explain the rules of chess briefly.",
    "Why do onions make you cry?",
)
