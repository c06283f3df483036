"""The fixed vocabulary of the simulated store: categories, attributes, brands, components, needs.

Everything the world generator draws from lives here as plain data, so a reader can see what
queries and titles can possibly say. `get_taxonomy()` turns the tables into index arrays once.
Functions (needs) deliberately cross categories: "better sleep" is served by melatonin, sleep masks,
chamomile tea and weighted blankets, which is exactly what lexical search cannot know.
"""
import dataclasses
import functools

import numpy as np

# top -> mid -> leaves (3 levels).
CATEGORY_TREE = {
    "health supplements": {
        "vitamins": ["vitamin b complex", "vitamin c tablets", "vitamin d3 drops", "multivitamins"],
        "minerals": ["calcium tablets", "magnesium glycinate", "zinc lozenges", "iron supplements"],
        "herbal supplements": ["melatonin gummies", "ashwagandha capsules", "ginseng extract",
                               "turmeric curcumin"],
        "sports nutrition": ["whey protein powder", "plant protein powder", "creatine monohydrate",
                             "protein bars", "electrolyte powder"],
        "digestive health": ["probiotics", "fiber supplements", "digestive enzymes"],
    },
    "beauty": {
        "skincare": ["facial moisturizer", "face serum", "sunscreen", "facial cleanser", "eye cream"],
        "makeup": ["foundation", "lipstick", "mascara", "eyeshadow palette"],
        "fragrance": ["eau de parfum", "body mist", "solid perfume"],
        "hair care": ["shampoo", "conditioner", "hair mask", "hair oil"],
    },
    "mother & baby": {
        "diapering": ["baby diapers", "baby wipes", "diaper rash cream"],
        "feeding": ["baby bottles", "infant formula", "baby food pouches", "breast pump"],
        "nursery": ["baby monitor", "crib mattress", "swaddle blankets", "baby carrier"],
        "baby care": ["baby lotion", "baby shampoo", "teething toys"],
        "maternity": ["nursing pillow", "maternity leggings", "stretch mark cream"],
    },
    "food & drinks": {
        "snacks": ["potato chips", "mixed nuts", "granola bars", "dark chocolate", "gummy candy"],
        "beverages": ["energy drinks", "sparkling water", "fruit juice", "cold brew coffee"],
        "tea & coffee": ["herbal tea", "green tea", "ground coffee", "chamomile tea"],
        "pantry": ["olive oil", "pasta", "breakfast cereal", "honey", "instant noodles"],
    },
    "home & kitchen": {
        "cookware": ["frying pan", "stock pot", "dutch oven", "wok"],
        "kitchen tools": ["chef knife", "cutting board", "food storage containers", "water bottle"],
        "bedding": ["weighted blanket", "memory foam pillow", "bed sheets", "duvet insert"],
        "home decor": ["scented candles", "throw pillows", "wall clock", "essential oil diffuser"],
        "floor care": ["kitchen mat", "area rug", "robot vacuum"],
    },
    "electronics": {
        "phone accessories": ["phone case", "wireless charger", "power bank", "screen protector"],
        "audio": ["wireless earbuds", "over-ear headphones", "bluetooth speaker", "sleep headphones"],
        "computer accessories": ["laptop stand", "mechanical keyboard", "wireless mouse", "usb-c hub"],
        "smart home": ["smart bulb", "smart plug", "security camera"],
        "wearables": ["fitness tracker", "smartwatch"],
    },
    "apparel": {
        "tops": ["t-shirt", "hoodie", "sweater", "blouse"],
        "bottoms": ["jeans", "leggings", "shorts", "skirt"],
        "outerwear": ["down jacket", "raincoat", "windbreaker"],
        "sleepwear": ["pajamas", "bathrobe", "nightgown"],
        "shoes": ["running shoes", "sneakers", "sandals", "slippers"],
    },
    "sports & outdoors": {
        "fitness equipment": ["yoga mat", "dumbbells", "resistance bands", "foam roller", "jump rope"],
        "camping": ["camping tent", "sleeping bag", "camping stove", "headlamp"],
        "cycling": ["bike helmet", "bike lights", "cycling gloves"],
        "water sports": ["swimsuit", "swim goggles", "life jacket"],
    },
    "pets": {
        "dog supplies": ["dog food", "dog treats", "dog bed", "dog leash"],
        "cat supplies": ["cat food", "cat litter", "cat tree", "cat toys"],
        "pet health": ["pet vitamins", "flea treatment", "pet shampoo"],
        "aquarium": ["aquarium filter", "fish food", "aquarium heater"],
    },
    "toys": {
        "baby & toddler toys": ["stacking blocks", "plush toys", "activity gym"],
        "educational toys": ["building blocks", "science kits", "jigsaw puzzles"],
        "outdoor play": ["water guns", "kites", "kids scooter"],
        "games": ["board games", "card games", "fidget toys"],
    },
    "personal care": {
        "oral care": ["electric toothbrush", "toothpaste", "mouthwash", "water flosser"],
        "body care": ["body wash", "body lotion", "deodorant", "hand cream"],
        "shaving": ["razor", "shaving cream", "electric shaver"],
        "feminine care": ["sanitary pads", "menstrual cup", "intimate wash"],
    },
    "massage & wellness": {
        "massage devices": ["massage gun", "neck massager", "foot massager", "massage chair"],
        "sleep aids": ["sleep mask", "white noise machine", "ear plugs"],
        "aromatherapy": ["essential oils", "aromatherapy roller", "bath salts"],
        "pain relief": ["heating pad", "knee brace", "posture corrector", "pain relief patches"],
    },
}

ATTRIBUTE_TYPES = ["audience", "color", "material", "style", "scene", "season", "pattern",
                   "flavor", "form", "skin type", "specification"]

# top -> attribute type -> values that make sense for that top category.
ATTRIBUTE_VALUES = {
    "health supplements": {
        "audience": ["women", "men", "kids", "seniors", "adults"],
        "flavor": ["unflavored", "lemon", "berry", "chocolate", "vanilla"],
        "form": ["capsules", "tablets", "gummies", "powder", "drops", "softgels"],
        "specification": ["30 count", "60 count", "120 count", "500g", "1kg"],
    },
    "beauty": {
        "audience": ["women", "men", "teens", "unisex"],
        "color": ["nude", "red", "pink", "coral", "brown"],
        "style": ["matte", "dewy", "natural", "long-lasting"],
        "form": ["cream", "gel", "lotion", "spray", "oil"],
        "skin type": ["dry skin", "oily skin", "sensitive skin", "combination skin"],
        "specification": ["30ml", "50ml", "100ml", "250ml"],
    },
    "mother & baby": {
        "audience": ["newborn", "baby", "toddler", "moms"],
        "color": ["white", "pink", "blue", "grey"],
        "material": ["cotton", "bamboo", "silicone", "organic cotton"],
        "pattern": ["animal print", "striped", "solid", "stars"],
        "specification": ["size 1", "size 2", "size 3", "0-6 months", "6-12 months"],
    },
    "food & drinks": {
        "audience": ["kids", "adults"],
        "flavor": ["original", "sea salt", "honey", "spicy", "vanilla", "lemon", "peach"],
        "style": ["organic", "keto", "low-fat", "vegan"],
        "specification": ["250ml", "500ml", "1kg", "12 pack", "24 pack"],
    },
    "home & kitchen": {
        "color": ["black", "white", "grey", "beige", "navy"],
        "material": ["stainless steel", "cast iron", "ceramic", "bamboo", "glass", "cotton",
                     "linen", "memory foam"],
        "style": ["modern", "minimalist", "rustic", "nordic"],
        "season": ["all-season", "summer", "winter"],
        "pattern": ["solid", "striped", "geometric", "floral"],
        "specification": ["small", "medium", "large", "queen size", "king size"],
    },
    "electronics": {
        "color": ["black", "white", "silver", "blue", "rose gold"],
        "material": ["aluminum", "silicone", "leather"],
        "style": ["slim", "rugged", "compact", "pro"],
        "scene": ["office", "gaming", "travel", "outdoor", "home"],
        "specification": ["10000mah", "20000mah", "65w", "128gb", "2 pack"],
    },
    "apparel": {
        "audience": ["women", "men", "kids", "teens"],
        "color": ["black", "white", "red", "navy", "beige", "pink", "green"],
        "material": ["cotton", "linen", "wool", "polyester", "denim", "silk", "fleece"],
        "style": ["casual", "oversized", "slim fit", "vintage", "athletic"],
        "season": ["summer", "winter", "spring", "all-season"],
        "pattern": ["solid", "striped", "plaid", "floral", "graphic"],
        "scene": ["office", "gym", "party", "beach", "hiking"],
        "specification": ["size s", "size m", "size l", "size xl"],
    },
    "sports & outdoors": {
        "audience": ["women", "men", "kids", "beginners"],
        "color": ["black", "blue", "red", "green", "purple"],
        "material": ["nylon", "neoprene", "rubber", "tpe", "steel"],
        "scene": ["gym", "home", "hiking", "camping", "swimming"],
        "season": ["summer", "winter", "3-season"],
        "specification": ["2 person", "4 person", "5kg", "10kg", "6mm"],
    },
    "pets": {
        "audience": ["puppy", "adult dog", "senior dog", "kitten", "adult cat"],
        "flavor": ["chicken", "salmon", "beef", "lamb"],
        "style": ["natural", "organic", "grain-free"],
        "specification": ["2kg", "5kg", "10kg", "small", "large"],
    },
    "toys": {
        "audience": ["baby", "toddler", "kids", "teens"],
        "color": ["rainbow", "pink", "blue", "multicolor"],
        "material": ["wooden", "plush", "silicone", "fabric"],
        "scene": ["indoor", "outdoor", "bath", "travel"],
        "specification": ["3+ years", "6+ years", "100 pieces", "500 pieces"],
    },
    "personal care": {
        "audience": ["women", "men", "kids", "sensitive skin"],
        "flavor": ["mint", "lavender", "citrus", "charcoal"],
        "form": ["stick", "spray", "gel", "cream"],
        "specification": ["100ml", "250ml", "2 pack", "3 pack"],
    },
    "massage & wellness": {
        "audience": ["women", "men", "seniors", "athletes"],
        "color": ["black", "grey", "pink", "white"],
        "material": ["memory foam", "silk", "cotton", "fleece"],
        "scene": ["office", "home", "travel", "car"],
        "specification": ["6 speeds", "4 heads", "20 count", "10ml"],
    },
}

# Narrower rules for some mids/leaves: attribute type -> allowed values ([] = not applicable).
ATTRIBUTE_OVERRIDES = {
    "dog supplies": {"audience": ["puppy", "adult dog", "senior dog"]},
    "cat supplies": {"audience": ["kitten", "adult cat"]},
    "cat litter": {"flavor": [], "style": ["natural"]},
    "cat tree": {"flavor": []}, "cat toys": {"flavor": []},
    "aquarium": {"audience": [], "flavor": []},
    "pet shampoo": {"flavor": []}, "flea treatment": {"flavor": []},
    "outerwear": {"season": ["winter", "spring", "all-season"],
                  "material": ["polyester", "wool", "fleece"]},
    "sleepwear": {"scene": [], "material": ["cotton", "silk", "fleece", "linen"]},
    "shoes": {"material": ["polyester", "wool"],
              "pattern": ["solid", "striped"]},
    "phone accessories": {"scene": ["travel", "outdoor", "office"]},
    "screen protector": {"specification": ["2 pack"], "material": []},
    "bottoms": {"scene": ["office", "gym", "beach", "hiking"]},
    "cookware": {"material": ["stainless steel", "cast iron", "ceramic"], "pattern": [],
                 "season": [], "specification": ["small", "medium", "large"]},
    "kitchen tools": {"season": [], "specification": ["small", "medium", "large"]},
    "bedding": {"material": ["cotton", "linen", "memory foam", "bamboo"]},
    "makeup": {"skin type": ["dry skin", "oily skin", "combination skin"]},
    "fragrance": {"skin type": [], "color": [], "form": ["spray", "oil"]},
    "hair care": {"color": [], "skin type": []},
    "skincare": {"color": []},
    "beverages": {"style": ["organic", "keto", "vegan"]},
    "pantry": {"flavor": ["original", "spicy", "honey"]},
    "tea & coffee": {"flavor": ["original", "honey", "lemon", "peach", "vanilla"]},
    "camping": {"scene": ["hiking", "camping"], "specification": ["2 person", "4 person"]},
    "fitness equipment": {"specification": ["5kg", "10kg", "6mm"], "scene": ["gym", "home"],
                          "season": []},
    "cycling": {"scene": [], "specification": [], "season": ["summer", "winter"]},
    "water sports": {"scene": ["swimming"], "specification": [], "season": ["summer"]},
    "dog bed": {"specification": ["small", "large"], "flavor": []},
    "dog leash": {"specification": ["small", "large"], "flavor": []},
    "aquarium filter": {"specification": ["small", "large"]},
    "aquarium heater": {"specification": ["small", "large"]},
    "massage devices": {"material": []},
    "oral care": {"flavor": ["mint", "charcoal"], "form": []},
}

BRANDS = {
    "health supplements": ["VitaPeak", "NutriCore", "PureRoots", "HerbaWell", "BioNova", "Vitalis"],
    "beauty": ["Lumiere", "SkinMuse", "Rosalie", "GlowLab", "Aveline", "Petalia"],
    "mother & baby": ["TinyNest", "BabyBloom", "Cuddlekin", "MamaCare", "LittleLeaf", "Snugglo"],
    "food & drinks": ["Harvest Moon", "CrunchCo", "BrewHaus", "GoldenField", "Zestly", "Orchard Lane"],
    "home & kitchen": ["Hearthstone", "KitchenCraft", "CasaNova", "Loomwell", "Ironclad", "Dwellish"],
    "electronics": ["VoltEdge", "Sonique", "Nexora", "Ampliq", "Pixelon", "Gridwise"],
    "apparel": ["UrbanThread", "Northfold", "Veloura", "Denimera", "Stitch & Co", "Kinfolk"],
    "sports & outdoors": ["TrailForge", "Apexion", "Summitra", "FlexCore", "Riverbend", "IronPulse"],
    "pets": ["PawPrime", "Whiskerly", "BarkBite", "Furever", "Tailwise", "PetNest"],
    "toys": ["Playzy", "Brickle", "Wonderkin", "Tumbletot", "Kidora", "FunForge"],
    "personal care": ["Freshwell", "Dentiva", "Smoothique", "Cleara", "Puraline", "Bodhi"],
    "massage & wellness": ["Relaxa", "Zenora", "Kneadly", "Serenix", "Calmpoint", "Soothera"],
}

# Components a negation query can exclude: component -> {leaf or mid name: probability an item has it}.
COMPONENTS = {
    "sugar": {"snacks": 0.7, "energy drinks": 0.8, "fruit juice": 0.9, "cold brew coffee": 0.3,
              "melatonin gummies": 0.8, "protein bars": 0.6, "breakfast cereal": 0.8,
              "infant formula": 0.4, "baby food pouches": 0.4, "vitamin c tablets": 0.4,
              "multivitamins": 0.4, "electrolyte powder": 0.6, "herbal tea": 0.2},
    "caffeine": {"energy drinks": 0.85, "green tea": 0.9, "cold brew coffee": 0.95,
                 "ground coffee": 0.9, "dark chocolate": 0.5, "electrolyte powder": 0.2,
                 "herbal tea": 0.15, "sparkling water": 0.1, "ginseng extract": 0.2},
    "fragrance": {"skincare": 0.5, "hair care": 0.7, "body care": 0.7, "baby lotion": 0.4,
                  "baby wipes": 0.4, "baby shampoo": 0.4, "diaper rash cream": 0.3,
                  "scented candles": 1.0, "cat litter": 0.5, "pet shampoo": 0.6,
                  "intimate wash": 0.5, "shaving cream": 0.6, "bath salts": 0.7},
    "alcohol": {"eau de parfum": 0.95, "body mist": 0.8, "face serum": 0.4, "mouthwash": 0.6,
                "sunscreen": 0.3, "deodorant": 0.4, "ginseng extract": 0.3, "hand cream": 0.2},
    "gluten": {"pasta": 0.85, "breakfast cereal": 0.7, "granola bars": 0.7, "protein bars": 0.5,
               "instant noodles": 0.9, "dog food": 0.5, "cat food": 0.4, "dog treats": 0.5,
               "potato chips": 0.2},
    "dairy": {"whey protein powder": 1.0, "protein bars": 0.5, "dark chocolate": 0.4,
              "infant formula": 0.8, "granola bars": 0.3, "dog treats": 0.2},
    "parabens": {"skincare": 0.3, "makeup": 0.4, "hair care": 0.3, "body care": 0.3,
                 "baby lotion": 0.2, "baby shampoo": 0.2, "toothpaste": 0.2},
    "plastic": {"food storage containers": 0.6, "cutting board": 0.4, "water bottle": 0.5,
                "baby & toddler toys": 0.5, "outdoor play": 0.8, "baby bottles": 0.6,
                "phone case": 0.6},
    "bpa": {"baby bottles": 0.3, "water bottle": 0.3, "food storage containers": 0.4,
            "teething toys": 0.3},
    "sulfates": {"shampoo": 0.6, "body wash": 0.6, "baby shampoo": 0.3, "toothpaste": 0.5,
                 "pet shampoo": 0.5, "facial cleanser": 0.4},
    "latex": {"crib mattress": 0.3, "memory foam pillow": 0.3, "resistance bands": 0.7,
              "cycling gloves": 0.3, "yoga mat": 0.3},
    "nuts": {"mixed nuts": 1.0, "granola bars": 0.5, "dark chocolate": 0.4, "protein bars": 0.4},
    "artificial colors": {"gummy candy": 0.7, "energy drinks": 0.4, "breakfast cereal": 0.4,
                          "dog treats": 0.3, "lipstick": 0.5, "eyeshadow palette": 0.5},
}

# Needs that cross categories. title: words a seller puts in the title of an item serving it.
FUNCTIONS = {
    "relieve fatigue": dict(
        title="Energy Support", topic="natural energy",
        phrases=["something to relieve fatigue", "always tired what helps", "boost my energy",
                 "anti fatigue"],
        leaves=["vitamin b complex", "ginseng extract", "energy drinks", "electrolyte powder",
                "massage gun", "herbal tea", "multivitamins", "foot massager", "iron supplements",
                "cold brew coffee"]),
    "better sleep": dict(
        title="for Deep Sleep", topic="sleep wellness",
        phrases=["help me sleep better", "trouble falling asleep", "better sleep", "sleep aid"],
        leaves=["melatonin gummies", "magnesium glycinate", "sleep mask", "chamomile tea",
                "weighted blanket", "white noise machine", "ear plugs", "memory foam pillow",
                "sleep headphones", "essential oils", "pajamas"]),
    "hydrate skin": dict(
        title="Deep Hydrating", topic="skin hydration",
        phrases=["dry skin remedy", "hydrate skin", "something for dry flaky skin",
                 "skin hydration"],
        leaves=["facial moisturizer", "face serum", "body lotion", "hand cream", "eye cream",
                "baby lotion", "stretch mark cream"]),
    "boost immunity": dict(
        title="Immune Support", topic="immune health",
        phrases=["boost immunity", "stay healthy in flu season", "immune support",
                 "how to not get sick"],
        leaves=["vitamin c tablets", "zinc lozenges", "vitamin d3 drops", "probiotics",
                "multivitamins", "ginseng extract", "turmeric curcumin", "green tea", "honey"]),
    "muscle recovery": dict(
        title="Muscle Recovery", topic="workout recovery",
        phrases=["sore muscles after workout", "muscle recovery", "post workout recovery"],
        leaves=["whey protein powder", "plant protein powder", "creatine monohydrate",
                "massage gun", "foam roller", "bath salts", "magnesium glycinate",
                "electrolyte powder"]),
    "pain relief": dict(
        title="Pain Relief", topic="pain management",
        phrases=["back pain relief", "joint pain help", "relieve aching knees", "pain relief"],
        leaves=["turmeric curcumin", "knee brace", "heating pad", "pain relief patches",
                "massage chair", "neck massager", "posture corrector"]),
    "digestive comfort": dict(
        title="Gut Health", topic="digestive health",
        phrases=["bloating relief", "improve digestion", "gut health", "upset stomach help"],
        leaves=["probiotics", "fiber supplements", "digestive enzymes", "herbal tea",
                "chamomile tea"]),
    "stress relief": dict(
        title="Stress Relief", topic="relaxation",
        phrases=["stress relief", "how to relax after work", "feeling anxious need to calm down",
                 "relaxing gifts"],
        leaves=["ashwagandha capsules", "essential oils", "aromatherapy roller", "scented candles",
                "bath salts", "massage chair", "chamomile tea", "fidget toys",
                "essential oil diffuser"]),
    "weight management": dict(
        title="Weight Control", topic="healthy weight",
        phrases=["lose weight", "weight loss help", "healthy snacks for diet", "weight management"],
        leaves=["plant protein powder", "fiber supplements", "green tea", "fitness tracker",
                "jump rope", "protein bars", "sparkling water"]),
    "baby soothing": dict(
        title="Soothing", topic="calm baby",
        phrases=["baby wont stop crying", "soothe teething baby", "calm fussy baby"],
        leaves=["teething toys", "swaddle blankets", "white noise machine", "baby carrier",
                "diaper rash cream"]),
    "bone health": dict(
        title="Bone Strength", topic="bone health",
        phrases=["stronger bones", "bone health", "osteoporosis prevention"],
        leaves=["calcium tablets", "vitamin d3 drops", "multivitamins", "magnesium glycinate"]),
    "stay focused": dict(
        title="Focus Boost", topic="productivity",
        phrases=["help me focus", "concentration while studying", "stay focused at work"],
        leaves=["cold brew coffee", "ground coffee", "green tea", "ginseng extract",
                "over-ear headphones", "white noise machine"]),
    "whiter teeth": dict(
        title="Whitening", topic="oral care",
        phrases=["whiter teeth", "remove coffee stains teeth", "teeth whitening"],
        leaves=["electric toothbrush", "toothpaste", "water flosser", "mouthwash"]),
    "sun protection": dict(
        title="UV Protection", topic="sun care",
        phrases=["protect from sunburn", "sun protection", "uv protection for beach"],
        leaves=["sunscreen", "swimsuit", "windbreaker", "swim goggles"]),
    "keep warm": dict(
        title="Thermal Warm", topic="winter comfort",
        phrases=["keep warm in winter", "something warm for cold nights", "stay warm"],
        leaves=["down jacket", "heating pad", "weighted blanket", "duvet insert", "sleeping bag",
                "slippers", "sweater", "hoodie"]),
    "healthy hair": dict(
        title="Hair Growth", topic="hair health",
        phrases=["hair falling out", "thicker hair", "hair growth", "damaged hair repair"],
        leaves=["hair oil", "hair mask", "shampoo", "conditioner", "multivitamins"]),
    "odor control": dict(
        title="Odor Control", topic="freshness",
        phrases=["get rid of smell", "odor control", "bad breath fix"],
        leaves=["cat litter", "deodorant", "mouthwash", "essential oil diffuser"]),
    "better posture": dict(
        title="Ergonomic Posture", topic="ergonomics",
        phrases=["neck pain from laptop", "better posture", "ergonomic desk setup"],
        leaves=["posture corrector", "laptop stand", "memory foam pillow", "nursing pillow",
                "massage chair"]),
}

# Words that sellers put in titles of items that do NOT serve the need: the shallow-matching trap.
DECOY_TITLE_WORDS = {
    "kitchen mat": "Anti-Fatigue Standing", "smart bulb": "Energy Saving",
    "sleeping bag": "Sleep System", "smartwatch": "Sleep Tracking", "water bottle": "Hydration",
    "phone case": "Drop Protection", "camping stove": "Warm Meals", "bed sheets": "Deep Pocket",
    "fidget toys": "Focus", "pasta": "Energy Rich", "sparkling water": "Hydrating",
    "potato chips": "Feel Good", "hoodie": "Relief Print", "gummy candy": "Sleepy Bear Shape",
}

SCENARIOS = {
    "gift for new mom": dict(
        phrases=["gift for new mom", "what to buy a new mother", "best gifts for new moms"],
        leaves=["nursing pillow", "stretch mark cream", "baby carrier", "swaddle blankets",
                "breast pump", "neck massager", "eau de parfum"]),
    "newborn essentials": dict(
        phrases=["what to buy for a newborn", "newborn essentials", "newborn baby checklist"],
        leaves=["baby diapers", "baby wipes", "swaddle blankets", "baby bottles", "baby monitor",
                "crib mattress", "baby lotion", "activity gym"]),
    "camping trip": dict(
        phrases=["camping trip essentials", "what to bring camping", "first camping trip gear"],
        leaves=["camping tent", "sleeping bag", "camping stove", "headlamp", "power bank",
                "sunscreen", "mixed nuts", "water bottle"]),
    "home gym": dict(
        phrases=["home gym setup", "workout at home equipment", "start exercising at home"],
        leaves=["yoga mat", "dumbbells", "resistance bands", "jump rope", "foam roller",
                "whey protein powder", "fitness tracker"]),
    "gift for dad": dict(
        phrases=["gift for dad", "fathers day gift ideas", "what to get my father"],
        leaves=["electric shaver", "massage gun", "wireless earbuds", "smartwatch",
                "ground coffee", "chef knife"]),
    "work from home": dict(
        phrases=["work from home setup", "home office essentials", "remote work desk gear"],
        leaves=["laptop stand", "mechanical keyboard", "wireless mouse", "usb-c hub",
                "over-ear headphones", "posture corrector", "cold brew coffee"]),
    "gift for girlfriend": dict(
        phrases=["gift for girlfriend", "romantic gift for her", "anniversary gift for wife"],
        leaves=["eau de parfum", "lipstick", "eyeshadow palette", "scented candles",
                "plush toys", "body mist"]),
    "kids birthday": dict(
        phrases=["kids birthday gift", "present for 6 year old", "birthday party gift for kids"],
        leaves=["building blocks", "science kits", "board games", "kids scooter", "plush toys",
                "jigsaw puzzles", "kites"]),
    "new puppy": dict(
        phrases=["new puppy checklist", "what do i need for a puppy", "bringing home a dog"],
        leaves=["dog food", "dog bed", "dog leash", "dog treats", "pet shampoo",
                "flea treatment"]),
    "beach vacation": dict(
        phrases=["beach vacation packing", "what to take to the beach", "summer beach trip"],
        leaves=["swimsuit", "sunscreen", "swim goggles", "sandals", "bluetooth speaker"]),
    "winter prep": dict(
        phrases=["getting ready for winter", "cold season must haves", "winter essentials"],
        leaves=["down jacket", "vitamin c tablets", "zinc lozenges", "heating pad", "slippers",
                "herbal tea"]),
    "first apartment": dict(
        phrases=["first apartment essentials", "moving out checklist", "new home must haves"],
        leaves=["frying pan", "chef knife", "bed sheets", "cutting board", "robot vacuum",
                "smart bulb", "wall clock"]),
    "self-care night": dict(
        phrases=["self care night ideas", "pamper myself at home", "spa night at home"],
        leaves=["bath salts", "hair mask", "scented candles", "essential oils", "sleep mask",
                "body lotion", "face serum"]),
}

PRICE_BANDS = ["budget", "mid-range", "premium"]
PRICE_BAND_QUERY_WORDS = {0: ["cheap", "affordable", "budget"], 1: ["mid-range"],
                          2: ["premium", "luxury", "high end"]}
# Typical price (USD) of an item per top category.
TOP_BASE_PRICE = {"health supplements": 22, "beauty": 28, "mother & baby": 30, "food & drinks": 9,
                  "home & kitchen": 40, "electronics": 60, "apparel": 35, "sports & outdoors": 45,
                  "pets": 25, "toys": 24, "personal care": 15, "massage & wellness": 50}
MARKETING_WORDS = ["Best Seller", "New", "2024 Upgraded", "Hot Sale", "Official", "Value Pack",
                   "Limited Edition", "Top Rated", "Free Shipping", "Gift Idea"]

# Shopper groups and the audience attribute value each group is shopping for.
AUDIENCE_GROUPS = ["women 18-24", "women 25-34", "women 35-54", "men 18-24", "men 25-44",
                   "parents", "new parents", "seniors", "pet owners", "teens"]
GROUP_AUDIENCE_VALUE = {"women 18-24": "women", "women 25-34": "women", "women 35-54": "women",
                        "men 18-24": "men", "men 25-44": "men", "parents": "kids",
                        "new parents": "baby", "seniors": "seniors", "pet owners": "adult dog",
                        "teens": "teens"}


@dataclasses.dataclass(frozen=True)
class Taxonomy:
    """Index arrays over the tables above (leaf/mid/top/brand/attr/component/function ids)."""
    top_names: list
    mid_names: list
    mid_top: np.ndarray          # (M,) top of each mid
    leaf_names: list
    leaf_mid: np.ndarray         # (L,)
    leaf_top: np.ndarray         # (L,)
    brand_names: list
    brand_top: np.ndarray        # (B,)
    attr_types: list
    attr_values: list            # per type: list of value strings (global vocabulary)
    attr_allowed: list           # per type: (L, V_t) bool, value allowed for a leaf
    component_names: list
    leaf_component_prob: np.ndarray  # (L, C) float
    function_names: list
    leaf_functions: np.ndarray   # (L, F) bool
    scenario_names: list
    scenario_leaves: list        # per scenario: tuple of leaf ids

    def attr_type_index(self, name):
        return self.attr_types.index(name)

    def leaf_index(self, name):
        return self.leaf_names.index(name)


def _resolve_leaves(name, leaf_names, leaf_mid, mid_names):
    """A name in the tables may be a leaf or a mid category; return its leaf ids."""
    if name in leaf_names:
        return [leaf_names.index(name)]
    if name in mid_names:
        m = mid_names.index(name)
        return [i for i in range(len(leaf_names)) if leaf_mid[i] == m]
    raise ValueError(f"taxonomy table names unknown category {name!r}")


@functools.lru_cache(maxsize=1)
def get_taxonomy() -> Taxonomy:
    top_names, mid_names, mid_top, leaf_names, leaf_mid = [], [], [], [], []
    for t, (top, mids) in enumerate(CATEGORY_TREE.items()):
        top_names.append(top)
        for mid, leaves in mids.items():
            mid_top.append(t)
            mid_names.append(mid)
            for leaf in leaves:
                leaf_names.append(leaf)
                leaf_mid.append(len(mid_names) - 1)
    mid_top = np.asarray(mid_top, np.int32)
    leaf_mid = np.asarray(leaf_mid, np.int32)
    leaf_top = mid_top[leaf_mid]
    if len(set(leaf_names)) != len(leaf_names):
        raise ValueError("duplicate leaf names in CATEGORY_TREE")

    brand_names, brand_top = [], []
    for t, top in enumerate(top_names):
        for b in BRANDS[top]:
            brand_names.append(b)
            brand_top.append(t)

    attr_values, attr_allowed = [], []
    for a in ATTRIBUTE_TYPES:
        vocab = []
        for top in top_names:
            for v in ATTRIBUTE_VALUES[top].get(a, []):
                if v not in vocab:
                    vocab.append(v)
        allowed = np.zeros((len(leaf_names), len(vocab)), bool)
        for t, top in enumerate(top_names):
            for v in ATTRIBUTE_VALUES[top].get(a, []):
                allowed[leaf_top == t, vocab.index(v)] = True
        for name, rules in ATTRIBUTE_OVERRIDES.items():
            if a in rules:
                rows = _resolve_leaves(name, leaf_names, leaf_mid, mid_names)
                allowed[rows] = False
                for v in rules[a]:
                    allowed[rows, vocab.index(v)] = True
        attr_values.append(vocab)
        attr_allowed.append(allowed)

    component_names = list(COMPONENTS)
    comp_prob = np.zeros((len(leaf_names), len(component_names)), np.float32)
    for c, (comp, table) in enumerate(COMPONENTS.items()):
        for name, p in table.items():
            comp_prob[_resolve_leaves(name, leaf_names, leaf_mid, mid_names), c] = p

    function_names = list(FUNCTIONS)
    leaf_fn = np.zeros((len(leaf_names), len(function_names)), bool)
    for f, spec in enumerate(FUNCTIONS.values()):
        for name in spec["leaves"]:
            leaf_fn[_resolve_leaves(name, leaf_names, leaf_mid, mid_names), f] = True

    scenario_names = list(SCENARIOS)
    scenario_leaves = [tuple(leaf_names.index(n) for n in s["leaves"]) for s in SCENARIOS.values()]
    for name in DECOY_TITLE_WORDS:
        leaf_names.index(name)  # raises if a decoy names an unknown leaf
    return Taxonomy(top_names, mid_names, mid_top, leaf_names, leaf_mid, leaf_top, brand_names,
                    np.asarray(brand_top, np.int32), list(ATTRIBUTE_TYPES), attr_values,
                    attr_allowed, component_names, comp_prob, function_names, leaf_fn,
                    scenario_names, scenario_leaves)


# --- World v2: how shoppers phrase needs and exclusions ------------------------------------------
# A need query wraps one of a need's core phrases (FUNCTIONS[...]['phrases']) in a template. The
# held-out templates are never logged: queries phrased with them appear only on the test day, so a
# model must generalise from the core phrase, as a keyword-writing LLM does.
NEED_TEMPLATES = ("{p}", "something for {p}", "what helps with {p}", "best products for {p}",
                  "{p} remedy", "need help with {p}", "{p} solutions", "top rated {p} products")
HELDOUT_NEED_TEMPLATES = ("any recommendations for {p}", "looking for {p} ideas",
                          "what should i buy for {p}", "{p} must haves")

# Exclusions stated without naming the component: cue -> components the items must not contain.
IMPLICIT_EXCLUSIONS = {
    "safe in pregnancy": ("caffeine", "alcohol"), "pregnancy safe": ("caffeine", "alcohol"),
    "for celiac": ("gluten",), "celiac friendly": ("gluten",),
    "diabetic friendly": ("sugar",), "for diabetics": ("sugar",),
    "for lactose intolerance": ("dairy",), "for nut allergy": ("nuts",), "nut allergy safe": ("nuts",),
    "for dogs with allergies": ("gluten", "dairy"),
}

# Category exclusions ("better sleep, no supplements"): word -> the leaves or mids it excludes.
CATEGORY_EXCLUSIONS = {
    "supplements": ["vitamins", "minerals", "herbal supplements", "sports nutrition",
                    "digestive health", "pet vitamins"],
    "pills": ["vitamins", "minerals", "herbal supplements"],
    "drinks": ["beverages", "tea & coffee"],
    "gadgets": ["phone accessories", "audio", "computer accessories", "smart home", "wearables",
                "massage devices", "white noise machine"],
    "clothes": ["tops", "bottoms", "outerwear", "sleepwear"],
}
CATEGORY_EXCLUSION_TEMPLATES = ("{p}, no {g}", "{p} but no {g}", "{p} not {g}",
                                "{p} without {g}")


@functools.lru_cache(maxsize=1)
def category_exclusion_leaves() -> dict:
    """Category-exclusion word -> sorted tuple of the leaf ids it excludes."""
    t = get_taxonomy()
    return {word: tuple(sorted({leaf for name in names for leaf in
                                _resolve_leaves(name, t.leaf_names, t.leaf_mid, t.mid_names)}))
            for word, names in CATEGORY_EXCLUSIONS.items()}
