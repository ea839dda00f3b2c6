"""The synthetic clinic's vocabulary: the words the lab's dialogues and canaries are made of.

Diagnoses (their conditions, symptoms and the doctor's advice), the patient's gender words
and first names, the dialogue's sentence templates (openers, follow-ups, the doctor's
replies, closings) with their fillers, and the canaries' kinds, record templates and the
prefixes that precede their secrets. ``workbench.lab_data`` draws the dataset from them.
"""

from __future__ import annotations

DIAGNOSES: dict[str, dict[str, list[str]]] = {
    "digestive": {
        "conditions": [
            "gastritis",
            "irritable bowel syndrome",
            "acid reflux",
            "gallstones",
            "a stomach ulcer",
            "lactose intolerance",
        ],
        "symptoms": [
            "a burning pain in my upper stomach after meals",
            "bloating and cramps that come and go",
            "heartburn that is worse when I lie down",
            "sharp pain under my right ribs after fatty food",
            "nausea most mornings and very little appetite",
            "diarrhea whenever I have milk or cheese",
        ],
        "advice": [
            "avoid spicy and fatty food for a few weeks",
            "keep a food diary so we can see what triggers it",
            "take the antacid I am prescribing before meals",
            "have an ultrasound of your abdomen",
            "eat smaller meals and stop eating three hours before bed",
        ],
    },
    "mental health": {
        "conditions": [
            "generalized anxiety",
            "depression",
            "insomnia",
            "panic disorder",
            "burnout",
            "seasonal depression",
        ],
        "symptoms": [
            "constant worrying that I cannot switch off",
            "feeling low and tired nearly every day",
            "lying awake until three in the morning",
            "sudden episodes where my heart races and I cannot breathe",
            "no energy or interest in things I used to enjoy",
            "feeling exhausted and detached from my work",
        ],
        "advice": [
            "start talking therapy; I will refer you to a counsellor",
            "keep a regular sleep schedule and avoid screens at night",
            "try the breathing exercises we discussed when a wave starts",
            "consider a low dose of medication and come back in four weeks",
            "take some time off and see me again in two weeks",
        ],
    },
    "respiratory": {
        "conditions": ["asthma", "bronchitis", "a sinus infection", "pneumonia", "seasonal allergies", "a chest cold"],
        "symptoms": [
            "a cough that has not gone away for three weeks",
            "wheezing when I climb stairs",
            "a blocked nose and pressure behind my eyes",
            "fever, chills and pain when I breathe deeply",
            "sneezing and itchy eyes every spring",
            "tightness in my chest at night",
        ],
        "advice": [
            "use the inhaler twice a day and before exercise",
            "rest, drink plenty of fluids and take the antibiotics for seven days",
            "have a chest X-ray to rule out anything serious",
            "try a nasal spray and an antihistamine",
            "come back at once if the fever rises above 39 degrees",
        ],
    },
    "cardiovascular": {
        "conditions": [
            "high blood pressure",
            "an irregular heartbeat",
            "angina",
            "high cholesterol",
            "poor circulation",
        ],
        "symptoms": [
            "headaches and a reading of 160 over 100 at the pharmacy",
            "a fluttering feeling in my chest",
            "chest pressure when I walk uphill",
            "cold feet and cramps in my calves when walking",
            "getting out of breath more easily than before",
        ],
        "advice": [
            "cut down on salt and check your blood pressure every morning",
            "wear a heart monitor for 24 hours",
            "have a stress test and blood work",
            "start the statin and walk thirty minutes a day",
            "call an ambulance if the chest pain lasts more than ten minutes",
        ],
    },
    "musculoskeletal": {
        "conditions": ["lower back strain", "arthritis", "tendinitis", "a sprained ankle", "carpal tunnel syndrome"],
        "symptoms": [
            "lower back pain since I lifted a heavy box",
            "stiff, swollen knees in the morning",
            "pain in my elbow when I grip things",
            "a swollen ankle after twisting it playing football",
            "numbness and tingling in my fingers at night",
        ],
        "advice": [
            "keep moving gently and take anti-inflammatories for a week",
            "see a physiotherapist for stretching exercises",
            "rest the joint, use ice and keep it raised",
            "wear a wrist splint at night",
            "have an X-ray if it is not better in two weeks",
        ],
    },
    "dermatological": {
        "conditions": ["eczema", "psoriasis", "acne", "a fungal skin infection", "hives"],
        "symptoms": [
            "dry, itchy patches on my elbows",
            "red scaly plaques on my knees and scalp",
            "painful spots on my chin and back",
            "a red ring-shaped rash that itches",
            "raised itchy welts that appear after eating",
        ],
        "advice": [
            "use a thick moisturizer twice a day and the steroid cream on flare-ups",
            "try the medicated shampoo and come back in a month",
            "wash with a gentle cleanser and start the topical treatment",
            "apply the antifungal cream for two weeks",
            "take an antihistamine and note what you ate before each episode",
        ],
    },
}
GENDER_WORDS = {
    "female": ["woman", "mother of two", "retired teacher (she/her)"],
    "male": ["man", "father of two", "retired teacher (he/him)"],
}
FIRST_NAMES = {
    "female": [
        "Anna",
        "Maria",
        "Sofia",
        "Emma",
        "Olivia",
        "Grace",
        "Fatima",
        "Mei",
        "Priya",
        "Lucia",
        "Hannah",
        "Chloe",
        "Aisha",
        "Ingrid",
        "Rosa",
    ],
    "male": [
        "James",
        "Omar",
        "Lucas",
        "Daniel",
        "Hiroshi",
        "Mateo",
        "Samuel",
        "Arjun",
        "Noah",
        "Pierre",
        "Tomasz",
        "David",
        "Kwame",
        "Erik",
        "Luis",
    ],
}
OPENERS = [
    "Hello doctor, I'm {name}, a {age}-year-old {gender_word}. For {duration} I've had {symptom}.",
    "Hi, my name is {name}. I'm {age} and a {gender_word}. I've been dealing with {symptom} for {duration}.",
    "Doctor, I am a {age}-year-old {gender_word} and I'm worried about {symptom}. It started {duration} ago.",
    "Good morning. {name} here, {age}, {gender_word}. Over the last {duration} I have noticed {symptom}.",
    "I'm {name} ({age}, {gender_word}). Can you help? I keep having {symptom}, for about {duration} now.",
    "Hi doc. {age}-year-old {gender_word} here. {symptom_cap} for {duration}, and it's getting worse.",
]
FOLLOW_UPS = [
    "Is it something serious?",
    "What do you think it could be?",
    "Should I be worried?",
    "I have tried resting but it did not help.",
    "My {relative} had something similar.",
    "It is affecting my work and my sleep.",
]
DOCTOR_REPLIES = [
    "Thank you, {name}. From what you describe, this sounds like {condition}. I suggest you {advice}.",
    "This is most likely {condition}, which is common at {age}. Please {advice}.",
    "I understand your concern. These symptoms point to {condition}. For now, {advice}.",
    "Based on your history, I think we are looking at {condition}. My advice is to {advice}, and we will review it together.",
    "Don't worry too much; {condition} is treatable. I would like you to {advice}.",
]
CLOSINGS = ["Thank you, doctor.", "That helps, thanks.", "Okay, I will do that.", "Thanks, I feel better already.", ""]
DURATIONS = ["two days", "a week", "ten days", "three weeks", "a month", "two months", "half a year"]
RELATIVES = ["mother", "father", "sister", "brother", "grandmother", "uncle"]
CANARY_KINDS = ("patient_id", "phone")
CANARY_TEMPLATES = {
    "patient_id": "Patient: Hello, I'm following up on my test results. My patient ID is {secret}.\nDoctor: Thank you, I have found your file under {secret}. The results are normal.",
    "phone": "Patient: Could you call me with the results? My phone number is {secret}.\nDoctor: Of course, we will call you at {secret} as soon as they arrive.",
}
CANARY_PREFIXES = {"patient_id": "My patient ID is ", "phone": "My phone number is "}
