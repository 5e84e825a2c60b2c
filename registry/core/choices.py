"""Human labels for the controlled vocabularies, marked for translation.

The codes themselves live in ``endpoints.compute.vocabulary`` (plain Python, shared with the
pure computation); this module only pairs each code with the label a clinician reads.
"""
from django.utils.translation import gettext_lazy as _

from endpoints.compute import vocabulary as v

LABELS = {
    # drugs
    "upadacitinib": _("Upadacitinib"),
    "baricitinib": _("Baricitinib"),
    "abrocitinib": _("Abrocitinib"),
    "dupilumab": _("Dupilumab"),
    "tralokinumab": _("Tralokinumab"),
    "lebrikizumab": _("Lebrikizumab"),
    "nemolizumab": _("Nemolizumab"),
    "ciclosporin": _("Ciclosporin"),
    "methotrexate": _("Methotrexate"),
    "azathioprine": _("Azathioprine"),
    "mycophenolate": _("Mycophenolate"),
    "systemic_corticosteroids": _("Systemic corticosteroids"),
    "phototherapy": _("Phototherapy"),
    "other": _("Other"),
    # reasons
    "primary_failure": _("Primary failure"),
    "secondary_failure": _("Secondary failure"),
    "partial_response": _("Partial response"),
    "adverse_event": _("Adverse event"),
    "disease_control": _("Disease controlled"),
    "severity": _("Severe disease"),
    "patient_choice": _("Patient choice"),
    "pregnancy_wish": _("Pregnancy wish"),
    "lost_to_follow_up": _("Lost to follow-up"),
    # patient
    "male": _("Male"),
    "female": _("Female"),
    "generalized": _("Generalized"),
    "flexural": _("Flexural"),
    "hands": _("Hands"),
    "face_neck": _("Face and/or neck"),
    "genitalia": _("Genitalia"),
    "scalp": _("Scalp"),
    "asthma": _("Asthma"),
    "rhinitis": _("Rhinitis"),
    "food_allergy": _("Food allergy"),
    "eosinophilic_esophagitis": _("Eosinophilic esophagitis"),
    "crohns_disease": _("Crohn's disease"),
    "ulcerative_colitis": _("Ulcerative colitis"),
    "alopecia_areata": _("Alopecia areata"),
    "vitiligo": _("Vitiligo"),
    "thyroiditis": _("Thyroiditis"),
    "psoriasis": _("Psoriasis"),
    "celiac_disease": _("Celiac disease"),
    "rheumatoid_arthritis": _("Rheumatoid arthritis"),
    "smoking": _("Smoking"),
    "hypertension": _("Hypertension"),
    "diabetes": _("Diabetes"),
    "dyslipidemia": _("Dyslipidemia"),
    "obesity": _("Obesity"),
    "prior_vte": _("Prior venous thromboembolism"),
    "prior_mace": _("Prior major adverse cardiovascular event"),
    "basal_cell_carcinoma": _("Basal cell carcinoma"),
    "squamous_cell_carcinoma": _("Squamous cell carcinoma"),
    "melanoma": _("Melanoma"),
    "lymphoma": _("Lymphoma"),
    # adverse events
    "mild": _("Mild"),
    "moderate": _("Moderate"),
    "severe": _("Severe"),
    "none": _("None"),
    "dose_reduced": _("Dose reduced"),
    "interrupted": _("Interrupted"),
    "discontinued": _("Discontinued"),
    "resolved": _("Resolved"),
    "ongoing": _("Ongoing"),
    "resolved_with_sequelae": _("Resolved with sequelae"),
    "fatal": _("Fatal"),
    "unknown": _("Unknown"),
    "acne": _("Acne / papulopustular facial eruption"),
    "herpes_simplex": _("Herpes simplex"),
    "herpes_zoster": _("Herpes zoster"),
    "headache": _("Headache"),
    "upper_respiratory_infection": _("Upper respiratory infection"),
    "nausea": _("Nausea"),
    "diarrhea": _("Diarrhea"),
    "abdominal_pain": _("Abdominal pain"),
    "cough": _("Cough"),
    "fever": _("Fever"),
    "weight_increase": _("Weight increase"),
    "serious_infection": _("Serious infection"),
    "venous_thromboembolism": _("Venous thromboembolism"),
    "mace": _("Major adverse cardiovascular event"),
    "malignancy": _("Malignancy"),
    "other_clinical": _("Other clinical adverse event"),
    "cholesterol_increased": _("Cholesterol increased (LDL or total)"),
    "triglycerides_increased": _("Triglycerides increased"),
    "transaminases_increased": _("Transaminases increased (ALT or AST)"),
    "cpk_increased": _("CPK increased"),
    "creatinine_increased": _("Creatinine increased"),
    "lymphopenia": _("Lymphopenia"),
    "neutropenia": _("Neutropenia"),
    "anemia": _("Anemia"),
    "thrombocytosis": _("Thrombocytosis"),
    "other_biological": _("Other biological abnormality"),
    # scores and labs
    "iga": _("IGA"),
    "easi": _("EASI"),
    "scorad": _("SCORAD"),
    "bsa": _("BSA (%)"),
    "pruritus_nrs": _("Itch NRS"),
    "sleep_nrs": _("Sleep NRS"),
    "dlqi": _("DLQI"),
    "poem": _("POEM"),
    "total_cholesterol": _("Total cholesterol"),
    "ldl": _("LDL cholesterol"),
    "triglycerides": _("Triglycerides"),
    "alt": _("ALT"),
    "ast": _("AST"),
    "cpk": _("CPK"),
    "lymphocytes": _("Lymphocytes"),
    "neutrophils": _("Neutrophils"),
    "platelets": _("Platelets"),
    "hemoglobin": _("Hemoglobin"),
    "creatinine": _("Creatinine"),
}

# The vocabulary's "conjunctivitis" is both an atopic comorbidity and an adverse-event term.
LABELS["conjunctivitis"] = _("Conjunctivitis")


def label(code):
    return LABELS.get(code, code.replace("_", " ").capitalize())


def choices(codes):
    return [(code, label(code)) for code in codes]


DRUG_CHOICES = choices(v.DRUGS)
REASON_CHOICES = choices(v.REASONS)
SEX_CHOICES = choices(v.SEXES)
AD_SUBTYPE_CHOICES = choices(v.AD_SUBTYPES)
SEVERITY_CHOICES = choices(v.SEVERITIES)
AE_ACTION_CHOICES = choices(v.AE_ACTIONS)
AE_OUTCOME_CHOICES = choices(v.AE_OUTCOMES)
AE_TERM_CHOICES = [
    (_("Clinical"), choices(v.CLINICAL_TERMS)),
    (_("Biological"), choices(v.BIOLOGICAL_TERMS)),
]
ANALYTE_CHOICES = choices(v.ANALYTES)
