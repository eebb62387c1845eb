"""Passage and sentence vectors: the ONNX and torch paths agree with sentence-transformers, and pooled sentence vectors come from the right tokens."""

from __future__ import annotations

import numpy as np
import pytest

from assistant.models import embeddings
from assistant.models.embeddings import Embedder, sentence_token_spans
from tests.models.conftest import packaged_embedding_model as _model

PASSAGES = [
    "Recruitment > Who to invite\nInvite people with recent experience of the service. Pay them for their time, "
    "and say so in the invitation.\n\n- Offer travel expenses up front.\n- Meet in an accessible venue.",
    "Measurement\nThe **4Pi** framework asks about principles, purpose, presence, process and impact. "
    "Repeat the questionnaire later in the project, so that changes in influence show.",
    "A short one with no sentences worth quoting",
    "Power " * 400 + "The last sentence lies past the model's 256 tokens.",
]
SENTENCES = [
    [
        "Invite people with recent experience of the service.",
        "Pay them for their time, and say so in the invitation.",
        "Offer travel expenses up front.",
        "Meet in an accessible venue.",
    ],
    [
        "The 4Pi framework asks about principles, purpose, presence, process and impact.",
        "Repeat the questionnaire later in the project, so that changes in influence show.",
    ],
    [],
    ["The last sentence lies past the model's 256 tokens.", "This sentence is not in the passage at all."],
]


@pytest.fixture(scope="module")
def reference():
    """What ingestion computed before: LangChain's HuggingFaceEmbeddings on torch, one text at a time."""
    path, name = _model()
    model = Embedder(path, name).model
    return lambda texts: np.asarray(model.embed_documents(texts), dtype=np.float32)


@pytest.fixture(scope="module", params=["onnx", "torch"])
def embedder(request, query_export):
    path, name = _model()
    embedder = Embedder(path, name, query_export if request.param == "onnx" else None)
    kind = type(embedder.document_encoder).__name__
    assert kind == ("_OnnxDocumentEncoder" if request.param == "onnx" else "_TorchDocumentEncoder")
    return embedder


def test_spans_find_sentences_without_their_markup_and_refuse_what_is_not_there():
    path, name = _model()
    tokenizer = Embedder(path, name).model._client.tokenizer
    text = PASSAGES[1].replace("\n", " ")
    offsets = np.asarray(tokenizer(text, return_offsets_mapping=True, truncation=True, max_length=256)["offset_mapping"])
    spans = sentence_token_spans(text, offsets, SENTENCES[1] + ["Nothing like this is in the passage."])
    first, second, absent = spans
    assert absent is None
    assert first[0] > 1 and first[1] <= second[0]  # after [CLS] and the heading, in order, not overlapping
    covered = tokenizer.decode(tokenizer(text, truncation=True, max_length=256)["input_ids"][first[0] : first[1]])
    # The markup inside the sentence is covered too; the sentence's letters and digits are all there, in order.
    assert " ".join(covered.replace("*", " ").split()) == "the 4pi framework asks about principles, purpose, presence, process and impact"
    long_text = PASSAGES[3]
    long_offsets = np.asarray(tokenizer(long_text, return_offsets_mapping=True, truncation=True, max_length=256)["offset_mapping"])
    assert sentence_token_spans(long_text, long_offsets, SENTENCES[3][:1]) == [None]  # truncated away


def test_passage_vectors_are_the_sentence_transformers_vectors(embedder, reference):
    got = embedder.embed_documents(PASSAGES)
    expected = reference(PASSAGES)
    assert got.shape == expected.shape == (4, 384) and got.dtype == np.float32
    assert np.abs(got - expected).max() < 1e-5
    assert embedder.embed_documents([]).shape == (0, 384)


def test_unpooled_sentence_vectors_are_each_sentence_embedded_alone(embedder, reference, monkeypatch):
    monkeypatch.setattr(embeddings, "POOL_SENTENCES", False)
    passages, sentences = embedder.embed_chunks(PASSAGES, SENTENCES)
    flat = [s for group in SENTENCES for s in group]
    assert sentences.shape == (len(flat), 384)
    assert np.abs(sentences - reference(flat)).max() < 1e-5
    assert np.abs(passages - reference(PASSAGES)).max() < 1e-5


def test_pooled_sentence_vectors_are_their_tokens_mean_in_the_passage(embedder, reference, monkeypatch):
    monkeypatch.setattr(embeddings, "POOL_SENTENCES", True)
    passages, sentences = embedder.embed_chunks(PASSAGES, SENTENCES)
    flat = [s for group in SENTENCES for s in group]
    alone = reference(flat)
    assert sentences.shape == (len(flat), 384)
    assert np.allclose(np.linalg.norm(sentences, axis=1), 1.0, atol=1e-5)
    # The two sentences that cannot be placed (truncated, absent) are embedded alone; the rest are not.
    assert np.abs(sentences[-2:] - alone[-2:]).max() < 1e-5
    assert (sentences[:-2] * alone[:-2]).sum(axis=1).max() < 0.9999
    # Each pooled vector is still about its own sentence: nearest to it of all the sentences embedded alone.
    nearest = (sentences[:-2] @ alone[:-2].T).argmax(axis=1)
    assert list(nearest) == list(range(len(flat) - 2))
    # By hand for one sentence: the mean of the token vectors its span covers.
    client = Embedder(*_model()).model._client
    text = PASSAGES[1].replace("\n", " ")
    tokens = client.encode([text], output_value="token_embeddings")[0].numpy()
    offsets = np.asarray(client.tokenizer(text, return_offsets_mapping=True, truncation=True, max_length=256)["offset_mapping"])
    first, last = sentence_token_spans(text, offsets, SENTENCES[1][:1])[0]
    by_hand = tokens[first:last].mean(axis=0)
    by_hand /= np.linalg.norm(by_hand)
    assert np.abs(sentences[4] - by_hand).max() < 1e-5


def test_embed_chunks_refuses_mismatched_lists(embedder):
    with pytest.raises(ValueError, match="2 passages but 1 lists"):
        embedder.embed_chunks(PASSAGES[:2], SENTENCES[:1])
    passages, sentences = embedder.embed_chunks([], [])
    assert passages.shape == sentences.shape == (0, 384)


def test_an_onnx_failure_mid_run_falls_back_to_torch(query_export, reference, caplog):
    path, name = _model()
    embedder = Embedder(path, name, query_export)
    encoder = embedder.document_encoder

    class Broken:  # an onnxruntime session that fails at run time, as a corrupted install or OOM would
        def run(self, *args, **kwargs):
            raise RuntimeError("onnxruntime: bad allocation")

    encoder._session = Broken()
    vectors = embedder.embed_documents(PASSAGES)
    assert np.abs(vectors - reference(PASSAGES)).max() < 1e-5
    assert type(embedder.document_encoder).__name__ == "_TorchDocumentEncoder"
    assert "embedded with torch from now on" in caplog.text
    assert embedder.embed_query("a question").shape == (384,)  # the query encoder's own session is untouched
