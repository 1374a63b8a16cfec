"""Every number this project quotes from the paper, in one place, never mixed with results.

Mehlman et al., "Scaling and Distilling Transformer Models for sEMG", TMLR 2025
(arXiv 2507.22094). Each constant names where in the paper it comes from. The book puts
these beside its measurements in columns labelled *(paper)*; no code treats them as
measured.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Reported:
    """One model of the paper's results table: size and CER % on emg2qwerty's 8 held-out users."""

    model: str
    params: str  # as printed in the paper
    parameters: float  # the same, as a number (for plots)
    cross_user_cer: float
    personalized_cer: float


# Table 2 (cross-user and personalized CER; the TDS-ConvNet row is emg2qwerty's baseline,
# Sivakumar et al. 2024, as the paper quotes it). Keyed by this project's preset family.
TABLE2: dict[str, Reported] = {
    "tds": Reported("TDS-ConvNet (emg2qwerty baseline)", "5.3M", 5.3e6, 55.57, 11.39),
    "tiny": Reported("Transformer Tiny", "2.2M", 2.2e6, 35.9, 9.7),
    "small": Reported("Transformer Small", "5.4M", 5.4e6, 35.2, 7.9),
    "large": Reported("Transformer Large", "109M", 109e6, 30.5, 6.8),
}

# Table 3 and the abstract (distillation): a Large teacher distilled into a Tiny-sized
# student about 50x smaller loses less than 1.5 points of cross-user CER.
TEACHER, STUDENT = "large", "tiny"
SIZE_RATIO = 50  # teacher / student parameters
DISTILL_GAP = 1.5  # CER points, distilled student minus teacher, at most
TABLE3_CER: dict[str, float] = {  # role -> cross-user CER %; the paper gives no number
    "teacher": TABLE2[TEACHER].cross_user_cer,  # for the distilled student, only the claim
    "student alone": TABLE2[STUDENT].cross_user_cer,
}
TABLE3_PERSONALIZED_CER: dict[str, float] = {  # the same presets' Table 2 numbers
    "teacher": TABLE2[TEACHER].personalized_cer,  # none for a distilled, personalized student
    "student alone": TABLE2[STUDENT].personalized_cer,
}
# Not a number the paper prints: the bound its claim implies (teacher + DISTILL_GAP), kept
# in its own column so that '(paper)' columns hold only the paper's numbers.
TABLE3_DISTILLED_BOUND = round(TABLE2[TEACHER].cross_user_cer + DISTILL_GAP, 2)
TABLE3_PARAMS: dict[str, str] = {
    "teacher": TABLE2[TEACHER].params,
    "student alone": TABLE2[STUDENT].params,
    "student distilled": TABLE2[STUDENT].params,
}

# Section 3.1 (training recipe): windows and context, in seconds; the optimizer.
WINDOW_S, PAST_S, FUTURE_S = 4.0, 0.9, 0.1
WEIGHT_DECAY, WARMUP_FRAC, GRAD_CLIP = 0.2, 0.05, 0.1
EFFECTIVE_BATCH = 640  # 16 V100 GPUs x 40
TRAIN_USERS = 96  # users of the generic split's training sessions (emg2qwerty, 8 held out)
