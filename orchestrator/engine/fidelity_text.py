"""A fixed English text (about 1,500 tokens) for measuring how faithful a weights variant is.

Written for this package (no outside source, nothing downloaded), mixing the kinds of
text a small assistant meets: narrative, explanation, dialogue, instructions, a letter,
numbers and lists. ``orchestrator.engine.fidelity`` compares next-token distributions
over it; changing the text changes every stored measurement's meaning, so the tune
records name its version (``FIDELITY_TEXT_VERSION``).
"""

from __future__ import annotations

__all__ = ["FIDELITY_TEXT", "FIDELITY_TEXT_VERSION"]

FIDELITY_TEXT_VERSION = 1

FIDELITY_TEXT = """\
The lighthouse on the northern cape was built in 1872, and for almost a hundred years a keeper lived in the small stone house at its foot. The last keeper, a quiet man named Thomas Hale, kept a logbook in which he wrote down the weather, the ships he saw, and the small events of each day. When the light was automated in 1968, the logbook was given to the town library, where anyone can still read it. Most entries are short. "Wind from the west, strong. Two fishing boats returned early. Painted the railing on the gallery." Some are longer, and a few are surprising. On a winter night in 1951 he wrote that he had seen a green light moving slowly across the water, far from any shipping lane, and that it had vanished after twenty minutes without a sound.

People in the town still argue about what he saw. Some say it was a ship in trouble, others that it was a reflection from the northern lights, and a few prefer a stranger story. The librarian, who has read the whole logbook twice, says that the most interesting thing about it is not the green light but the patience of the man who wrote it. For thirty-one years he climbed the same one hundred and twelve steps every evening, trimmed the same wick, and wrote the same kind of careful note before he went to sleep.

How does a lighthouse work? The idea is simple. A bright source of light sits at the centre of a large lens, which gathers the light and bends it into a narrow, powerful beam. The lens turns slowly, so that a ship far out at sea sees a flash at regular intervals. Each lighthouse has its own pattern: one long flash every ten seconds, for example, or three short flashes followed by darkness. By counting the flashes and comparing them with a chart, a navigator can tell exactly which lighthouse she is looking at, and therefore where her ship must be.

Before electricity, the light came from oil lamps, and the keeper had to keep them burning through the night. The glass had to be cleaned every morning, because a thin film of soot could cut the range of the beam by half. In bad weather the work was hard and sometimes dangerous, and in many places the keeper's family helped. Children learned to trim wicks and polish brass as soon as they could climb the stairs.

"Do you ever get lonely out here?" a visitor once asked the keeper's daughter.
"Not really," she answered. "There is always something to do, and the sea never looks the same two days in a row. In the summer the boats come close, and the fishermen wave. In the winter we read a lot."
"What do you read?"
"Anything the supply boat brings. Last month it was a book about bees, and before that a history of the railways. My father says that a person who reads widely is never really alone."

Today most lighthouses run without anyone living in them. Sensors switch the lamps on at dusk and off at dawn, and a technician visits a few times a year. Satellite navigation has made the beams less important than they once were, but ships still carry charts that list every light, and sailors still feel relieved when they see a familiar flash on a dark night. Electronics can fail, and a light on a hill does not need a battery in the ship to be seen.

A simple recipe for bread

You will need 500 grams of flour, 10 grams of salt, 7 grams of dried yeast and about 350 millilitres of warm water. Mix the flour, salt and yeast in a large bowl. Add the water slowly, stirring with a wooden spoon until the dough comes together. Turn it out onto a lightly floured table and knead it for ten minutes, until it is smooth and springs back when you press it with a finger. Put the dough back in the bowl, cover it with a clean cloth, and leave it in a warm place for about an hour, or until it has doubled in size.

When the dough has risen, press it down gently to let out the air, shape it into a round loaf, and place it on a baking tray. Let it rise again for thirty minutes while the oven heats to 220 degrees. Cut a shallow cross in the top with a sharp knife, then bake the loaf for thirty to thirty-five minutes. It is ready when it is golden brown and sounds hollow when you tap the bottom. Let it cool on a rack before you slice it; bread that is cut too early tends to be gummy in the middle.

Dear Margaret,

Thank you for your letter and for the photographs of the garden. The roses look wonderful, and I can hardly believe how tall the apple tree has grown since we planted it. Here the spring has been cold and wet, and the river rose higher than anyone can remember. The bridge on the old road was closed for a week, so I had to take the long way round to the market, which added almost an hour to the trip. Still, the fields are green now, and the first swallows arrived on Tuesday.

I have finally started the course on local history that I told you about. We meet on Thursday evenings in the school hall, and there are about fifteen of us, most of them retired. Last week a man brought a box of old maps that his grandfather had drawn by hand, showing every farm and footpath in the valley. Some of the paths have disappeared completely, and we are planning to walk the routes that remain before the summer is over. I will send you a copy of the map if the shop in town can print it at a reasonable size.

Please give my best wishes to Robert and the children. I hope to visit in August, if the trains are running properly by then.

With love,
Helen

Why does the sky change colour at sunset? Sunlight contains every colour of the rainbow. As it passes through the air, tiny molecules scatter the shorter, bluer wavelengths more strongly than the longer, redder ones. During the day, when the sun is high, this scattered blue light reaches our eyes from every direction, and the whole sky looks blue. At sunset the light has to travel through much more air before it reaches us. By the time it arrives, most of the blue has been scattered away, and what remains is mostly orange and red. Dust, smoke and water droplets can make the colours stronger, which is why sunsets after a volcanic eruption or a forest fire are often especially vivid.

A few facts about the planets of our solar system:
1. Mercury is the smallest planet and the closest to the sun. A year there lasts only 88 days.
2. Venus is covered by thick clouds and is the hottest planet, even though it is farther from the sun than Mercury.
3. Earth is the only planet known to support life, and about seventy percent of its surface is covered by water.
4. Mars has the tallest volcano in the solar system, Olympus Mons, which is nearly three times the height of Mount Everest.
5. Jupiter is so large that all the other planets could fit inside it, with room to spare.
6. Saturn's rings are made mostly of ice, and they are less than a kilometre thick in most places.

Learning a new skill as an adult is often slower than we expect, and that can be discouraging. Researchers who study learning suggest a few simple habits. First, practise a little every day rather than a lot once a week; the brain consolidates new skills during sleep, so frequent short sessions work better than rare long ones. Second, focus on the parts you find difficult instead of repeating what you already do well. Third, ask for feedback early, from a teacher, a friend, or even a recording of yourself. Finally, be patient. Progress usually comes in steps rather than in a smooth line, and a week that feels wasted is often followed by a sudden improvement.

When the old keeper retired, the town held a small party for him in the harbour office. Someone asked him what he would miss most. He thought about it for a long time, and then he said that he would miss the moment just before dawn, when the lamp was still turning and the first grey light appeared over the water, and for a few minutes the lighthouse and the sun were both shining at once.
"""
