-- The default calibration prompts of `grove prune --model` (pruning a real
-- SANA folder): 32 captions of everyday photographs, illustrations and
-- designs, written for grove. They are kept apart from every evaluation
-- prompt set grove ships (data/shapes/prompts and the prompts of docs and
-- benches; tests/lua/test_real_prune.lua checks that none appears there),
-- so that blocks are not chosen on the prompts they are judged on. Give
-- your own with --calib FILE (one prompt a line).
return {
  "a close-up photograph of a ceramic teapot on a wooden kitchen table, morning light through a window",
  "an aerial view of a winding river through autumn forest, orange and yellow leaves",
  "a portrait of an elderly fisherman with a grey beard, wearing a knitted cap, harbour in the background",
  "a watercolour illustration of a lighthouse on a rocky cliff during a storm",
  "a bowl of ramen with a soft-boiled egg, spring onions and slices of pork, steam rising",
  "a modern living room with a green velvet sofa, a floor lamp and large plants",
  "a red fox standing in fresh snow, looking over its shoulder",
  "a neon-lit street market at night in the rain, reflections on wet pavement",
  "a child flying a kite on a grassy hill under a blue sky with scattered clouds",
  "a vintage bicycle leaning against a brick wall covered in ivy",
  "a flat vector logo of a mountain and a sun in two colours, white background",
  "a macro photograph of a dragonfly resting on a reed, shallow depth of field",
  "an oil painting of a bustling harbour town at sunset, boats with white sails",
  "a stack of old leather-bound books next to a burning candle on a desk",
  "a snowy mountain range reflected in a still alpine lake at dawn",
  "a golden retriever puppy sleeping on a patterned rug",
  "a futuristic train crossing a glass bridge between skyscrapers",
  "a plate of fresh sushi arranged on a slate board, chopsticks on the side",
  "a desert landscape with tall cacti and a purple evening sky",
  "a pencil sketch of a cathedral facade with detailed arches and rose window",
  "a woman in a yellow raincoat holding an umbrella on a cobblestone street",
  "a cosy cabin in a pine forest with smoke coming from the chimney, winter",
  "a bowl of mixed fruit: apples, pears, grapes and a halved pomegranate",
  "a cyclist racing down a mountain road, motion blur",
  "a tropical beach with turquoise water, palm trees and a wooden pier",
  "a robot made of brass gears reading a newspaper in a cafe",
  "a field of sunflowers under a dramatic thunderstorm sky",
  "a minimalist poster with the word HELLO in bold letters on a pastel background",
  "a barn owl in flight at dusk, wings fully spread",
  "a busy kitchen in a restaurant, chefs plating dishes, warm light",
  "a glass of iced lemonade with mint leaves on a sunny terrace",
  "a medieval knight in polished armour standing in a misty field",
}
