"""Labels and speaker from file names: named corpus layouts, formats, regular expressions."""

from __future__ import annotations

from pathlib import Path

import pytest

from speechssl.data import BadFileSummary, load_corpus
from speechssl.data.corpora.pattern import NAMED_PATTERNS, compile_pattern, parse_path

EXPECTED = {  # each named layout's example file -> its fields
    "crema-d": {"speaker": "1001", "sentence": "DFA", "emotion": "angry", "level": "unspecified"},
    "tess": {"speaker": "OAF", "word": "back", "emotion": "angry"},
    "savee": {"speaker": "DC", "emotion": "angry", "sentence": "01"},
    "emodb": {"speaker": "03", "text": "a01", "emotion": "happy", "version": "a"},
    "speech-commands": {"keyword": "yes", "speaker": "0a7c2a8d"},
}


@pytest.mark.parametrize("name", sorted(NAMED_PATTERNS))
def test_named_layouts_parse_their_corpus_example(name):
    example = Path(NAMED_PATTERNS[name].example).with_suffix("").as_posix()
    assert parse_path(example, name) == EXPECTED[name]
    assert parse_path(f"some/folder/{example}", name) == EXPECTED[name]


def test_codes_map_to_shared_emotion_names():
    assert parse_path("YAF_dog_ps", "tess")["emotion"] == "surprised"
    assert parse_path("JK_su15", "savee") == {"speaker": "JK", "emotion": "surprised", "sentence": "15"}
    assert parse_path("JK_sa03", "savee")["emotion"] == "sad"
    assert parse_path("AudioData/KL/n30", "savee") == {
        "speaker": "KL",
        "emotion": "neutral",
        "sentence": "30",
    }
    assert parse_path("16b10Wb", "emodb")["emotion"] == "angry"
    assert parse_path("1091_WSI_SAD_HI", "crema-d")["emotion"] == "sad"


def test_formats_and_regular_expressions():
    assert parse_path("spk7/take2_happy", "{speaker}/{}_{emotion}") == {"speaker": "spk7", "emotion": "happy"}
    assert parse_path("ab12x", "{speaker:2}{n:2}{label}") == {"speaker": "ab", "n": "12", "label": "x"}
    assert parse_path("x_y", "{speaker}_{emotion}_{}") is None
    assert parse_path("m03-e5", r"m(?P<speaker>\d+)-e(?P<emotion>\d)") == {"speaker": "03", "emotion": "5"}
    with pytest.raises(ValueError, match="expected at least one named field"):
        compile_pattern("{}_{}")
    with pytest.raises(ValueError, match="field 'split' is a manifest column"):
        compile_pattern("{speaker}_{split}")
    with pytest.raises(ValueError, match="not a valid regular expression"):
        compile_pattern("(?P<speaker>[a-")
    with pytest.raises(ValueError, match="expected one of crema-d, tess"):
        parse_path("x", "cremad")


def test_pattern_loader_records_files_it_cannot_parse(tmp_path, write_audio):
    for name in ("1001_DFA_ANG_XX", "1002_IEO_HAP_HI"):
        write_audio(tmp_path / "AudioWAV" / f"{name}.wav", seconds=0.2, sample_rate=22050)
    write_audio(tmp_path / "AudioWAV" / "notes.wav", seconds=0.2)
    bad = BadFileSummary()
    manifest = load_corpus("pattern", tmp_path / "AudioWAV", bad, pattern="crema-d")
    assert manifest.column("speaker") == ["1001", "1002"] and manifest.column("emotion") == ["angry", "happy"]
    assert manifest.column("sample_rate") == [22050, 22050] and set(manifest.column("split")) == {"train"}
    assert [b.id for b in bad] == ["notes"] and "does not match the pattern" in bad.files[0].reason
    with pytest.raises(ValueError, match=r"notes.wav: name does not match the pattern"):
        load_corpus("pattern", tmp_path / "AudioWAV", pattern="crema-d")
    with pytest.raises(ValueError, match=r"no file name under .* matches"):
        load_corpus("pattern", tmp_path / "AudioWAV", BadFileSummary(), pattern="{speaker}-{emotion}")
