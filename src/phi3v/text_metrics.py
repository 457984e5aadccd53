"""Text metrics for generated answers: normalised exact match and edit similarity (ANLS-style), against one or
several references.

Answers of a conversational dataset are compared after `normalise_answer` (strip, trailing dots, case, whitespace);
the catalogue task (`phi3v.tasks.catalogue.metrics`) and the published tasks (`phi3v.tasks`) add their own metrics.
"""

from collections.abc import Sequence


def normalise_text(text: str) -> str:
    """Casefold and collapse runs of whitespace, so that `" Check  scarf"` equals `"check Scarf"`.

    Args:
        text (`str`): The text to normalise.

    Returns:
        `str`: The normalised text.
    """
    return " ".join(text.casefold().split())


def levenshtein_distance(a: str, b: str) -> int:
    """The number of single-character insertions, deletions and substitutions that turn `a` into `b`.

    Args:
        a (`str`): The first string.
        b (`str`): The second string.

    Returns:
        `int`: The edit distance.
    """
    if len(a) < len(b):
        a, b = b, a
    previous_row = list(range(len(b) + 1))
    for i, char_a in enumerate(a, start=1):
        current_row = [i]
        for j, char_b in enumerate(b, start=1):
            current_row.append(
                min(previous_row[j] + 1, current_row[j - 1] + 1, previous_row[j - 1] + (char_a != char_b))
            )
        previous_row = current_row
    return previous_row[-1]


def normalised_edit_similarity(a: str, b: str, threshold: float = 0.5) -> float:
    """ANLS-style similarity: 1 - Levenshtein / longer length, on normalised strings, zeroed when too dissimilar.

    Args:
        a (`str`): The prediction.
        b (`str`): The reference.
        threshold (`float`, *optional*, defaults to 0.5):
            A normalised distance at or above this scores 0, as in ANLS, so that a wrong answer earns no partial
            credit. `1.0` gives the plain similarity.

    Returns:
        `float`: A score in [0, 1]; 1 when the normalised strings are equal (two empty strings included).
    """
    a, b = normalise_text(a), normalise_text(b)
    longer = max(len(a), len(b))
    if longer == 0:
        return 1.0
    distance = levenshtein_distance(a, b) / longer
    return 1.0 - distance if distance < threshold else 0.0


def normalise_answer(text: str) -> str:
    """An answer as compared: stripped, trailing dots removed, casefolded, whitespace collapsed (`" Yes. "` -> `"yes"`)."""
    return normalise_text(text.strip().rstrip(".").strip())


def answer_scores(prediction: str, references: Sequence[str]) -> dict[str, float]:
    """Scores of one generated answer against its references, the best over them.

    Args:
        prediction (`str`): the generated answer.
        references (`Sequence[str]`): the acceptable answers (at least one).

    Returns:
        `dict`: `exact_match` (1.0 or 0.0, after `normalise_answer` on both sides) and `edit_similarity` (1 -
        normalised Levenshtein distance of the normalised strings, in [0, 1]).
    """
    if not references:
        raise ValueError("An answer needs at least one reference to be scored against.")
    predicted = normalise_answer(prediction)
    return {
        "exact_match": float(any(predicted == normalise_answer(reference) for reference in references)),
        "edit_similarity": max(
            normalised_edit_similarity(predicted, normalise_answer(reference), threshold=float("inf"))
            for reference in references
        ),
    }
