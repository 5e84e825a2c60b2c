"""The registry's controlled vocabularies, as plain codes.

Kept free of Django so that the pure endpoint computation, the dataset bundle reader and the
models all read the same lists (dataset-format.md, "Codes"). Human labels, which need
translation, live beside the model choices in ``registry.core.choices``.
"""

DRUGS = (
    "upadacitinib", "baricitinib", "abrocitinib", "dupilumab", "tralokinumab",
    "lebrikizumab", "nemolizumab", "ciclosporin", "methotrexate", "azathioprine",
    "mycophenolate", "systemic_corticosteroids", "phototherapy", "other",
)

#: Biologics and JAK inhibitors: "advanced" treatments (endpoints.md, baseline table).
ADVANCED_DRUGS = (
    "upadacitinib", "baricitinib", "abrocitinib", "dupilumab", "tralokinumab",
    "lebrikizumab", "nemolizumab",
)

JAK_INHIBITORS = ("upadacitinib", "baricitinib", "abrocitinib")

#: Highest approved atopic-dermatitis daily dose per drug (mg). A dose above it is "high dose"
#: for the escalation endpoints (endpoints.md, "Dose escalation"). Drugs absent here have no
#: high-dose analysis.
HIGHEST_APPROVED_DOSE_MG = {
    "upadacitinib": 30,
    "baricitinib": 4,
    "abrocitinib": 200,
}

REASONS = (
    "primary_failure", "secondary_failure", "partial_response", "adverse_event",
    "disease_control", "severity", "patient_choice", "pregnancy_wish", "lost_to_follow_up",
    "other",
)

#: Stop reasons that mean the disease was not controlled (de-escalation endpoint).
FAILURE_REASONS = ("primary_failure", "secondary_failure", "partial_response")

SEXES = ("male", "female")
AD_SUBTYPES = ("generalized", "flexural", "other")
SPECIAL_AREAS = ("hands", "face_neck", "genitalia", "scalp")
ATOPIC_COMORBIDITIES = (
    "asthma", "rhinitis", "food_allergy", "eosinophilic_esophagitis", "conjunctivitis",
)
AUTOIMMUNE_COMORBIDITIES = (
    "crohns_disease", "ulcerative_colitis", "alopecia_areata", "vitiligo", "thyroiditis",
    "psoriasis", "celiac_disease", "rheumatoid_arthritis", "other",
)
CV_RISK_FACTORS = (
    "smoking", "hypertension", "diabetes", "dyslipidemia", "obesity", "prior_vte", "prior_mace",
)
NEOPLASIA = (
    "basal_cell_carcinoma", "squamous_cell_carcinoma", "melanoma", "lymphoma", "other",
)

#: Patient list columns and their vocabularies, in the order of patients.csv.
COMORBIDITY_LISTS = {
    "atopic_comorbidities": ATOPIC_COMORBIDITIES,
    "autoimmune_comorbidities": AUTOIMMUNE_COMORBIDITIES,
    "cv_risk_factors": CV_RISK_FACTORS,
    "neoplasia_last_5y": NEOPLASIA,
}

SEVERITIES = ("mild", "moderate", "severe")
AE_ACTIONS = ("none", "dose_reduced", "interrupted", "discontinued")
AE_OUTCOMES = ("resolved", "ongoing", "resolved_with_sequelae", "fatal", "unknown")

CLINICAL_TERMS = (
    "acne", "herpes_simplex", "herpes_zoster", "headache", "upper_respiratory_infection",
    "nausea", "diarrhea", "abdominal_pain", "cough", "fever", "weight_increase",
    "conjunctivitis", "serious_infection", "venous_thromboembolism", "mace", "malignancy",
    "other_clinical",
)
BIOLOGICAL_TERMS = (
    "cholesterol_increased", "triglycerides_increased", "transaminases_increased",
    "cpk_increased", "creatinine_increased", "lymphopenia", "neutropenia", "anemia",
    "thrombocytosis", "other_biological",
)
AE_TERMS = CLINICAL_TERMS + BIOLOGICAL_TERMS

#: Score fields of a visit: (code, lowest, highest, step). The step is the granularity that
#: dataset-format.md allows (EASI and SCORAD to one decimal, BSA to one decimal %).
SCORES = (
    ("iga", 0, 4, 1),
    ("easi", 0, 72, 0.1),
    ("scorad", 0, 103, 0.1),
    ("bsa", 0, 100, 0.1),
    ("pruritus_nrs", 0, 10, 1),
    ("sleep_nrs", 0, 10, 1),
    ("dlqi", 0, 30, 1),
    ("poem", 0, 28, 1),
)
SCORE_CODES = tuple(code for code, *_ in SCORES)

#: Laboratory analytes in canonical units.
LAB_UNITS = {
    "total_cholesterol": "mmol/L",
    "ldl": "mmol/L",
    "triglycerides": "mmol/L",
    "alt": "U/L",
    "ast": "U/L",
    "cpk": "U/L",
    "lymphocytes": "10⁹/L",
    "neutrophils": "10⁹/L",
    "platelets": "10⁹/L",
    "hemoglobin": "g/dL",
    "creatinine": "µmol/L",
}
ANALYTES = tuple(LAB_UNITS)

#: Biological AE term -> (analytes, which limit of the center's range counts).
LAB_TERMS = {
    "cholesterol_increased": (("ldl", "total_cholesterol"), "upper"),
    "triglycerides_increased": (("triglycerides",), "upper"),
    "transaminases_increased": (("alt", "ast"), "upper"),
    "cpk_increased": (("cpk",), "upper"),
    "creatinine_increased": (("creatinine",), "upper"),
    "lymphopenia": (("lymphocytes",), "lower"),
    "neutropenia": (("neutrophils",), "lower"),
    "anemia": (("hemoglobin",), "lower"),
    "thrombocytosis": (("platelets",), "upper"),
}
