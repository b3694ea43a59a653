"""A model's architecture, defined once: the cell table and the network spec.

Everything that needs to know a cell's gates, its parameters' names and
shapes, or which choices exist reads them from here: the layers, the
network, the model file, the Cython module, the numpy reference, the tests
and the benchmarks. A new cell is a row of ``CELLS`` (plus its C kernels
and its numpy reference).

Parameter names and shapes follow PyTorch's ``nn.LSTM`` / ``nn.GRU``
(``weight_ih_l{k}``, ``..._reverse``), with each cell's extra parameters
after the four common ones of each layer-direction.
"""
import dataclasses
import math

from ._limits import MAX_WIDTH
from ._validation import Bool, Choice, DType, HiddenSizes, Int, Real

__all__ = ["Cell", "CELLS", "ACTIVATIONS", "GATE_ACTIVATIONS", "NetworkSpec",
           "layer_param_shapes", "direction_suffix"]


@dataclasses.dataclass(frozen=True)
class Cell:
    """One recurrent cell.

    code: its ``enum fl_cell`` value in src_c/fastlstm.h. gates: G, so W_ih
    is (G*H, I) and W_hh (G*H, H). cell_state: whether it carries c next to
    h (the layer's state is then (h, c)). extra: parameters beyond W_ih,
    W_hh, b_ih, b_hh, as (name, rows): shape (rows, H) per layer-direction.
    layer: the layer class that runs it. peers: which of PyTorch, ONNX and
    Keras have the same cell (for parity tests, export and weight import).
    onnx_attrs: attributes of the ONNX operator named like ``layer`` that
    make it this cell, as (name, value) pairs (fastlstm.export).
    """
    name: str
    code: int
    gates: int
    cell_state: bool
    extra: tuple = ()
    layer: str = "LSTM"
    peers: tuple = ()
    onnx_attrs: tuple = ()


CELLS = {c.name: c for c in (
    Cell("lstm", 0, 4, True, peers=("torch", "onnx", "keras")),
    # ONNX's diagonal peepholes, rows i, f, o
    Cell("peephole", 1, 4, True, extra=(("weight_peephole", 3),), peers=("onnx",)),
    # coupled input-forget gate f = 1 - i (ONNX's input_forget=1); the forget
    # rows stay in the 4H layout and get zero gradient
    Cell("cifg", 2, 4, True, peers=("onnx",), onnx_attrs=(("input_forget", 1),)),
    # PyTorch's GRU is ONNX's with linear_before_reset=1 and Keras' with reset_after=True
    Cell("gru", 3, 3, False, layer="GRU", peers=("torch", "onnx", "keras"),
         onnx_attrs=(("linear_before_reset", 1),)),
)}

# enum fl_act and enum fl_gate in src_c/fastlstm.h
ACTIVATIONS = {"tanh": 0, "relu": 1}
GATE_ACTIVATIONS = {"sigmoid": 0, "hard_sigmoid": 1}


def direction_suffix(layer, direction):
    """PyTorch's suffix of layer ``layer``'s parameters: l0, l0_reverse, l1, ..."""
    return f"l{layer}" + ("_reverse" if direction else "")


def layer_param_shapes(cell, input_size, hidden_sizes, bidirectional):
    """[(name, shape)] of a stack of recurrent layers in flat-buffer order: layer
    by layer, each direction's W_ih, W_hh, b_ih, b_hh and then the cell's extra
    parameters. Layer k > 0 reads the previous layer's D * H_{k-1} outputs."""
    c = CELLS[cell]
    D = 2 if bidirectional else 1
    shapes = []
    in_size = input_size
    for k, H in enumerate(hidden_sizes):
        GH = c.gates * H
        for d in range(D):
            sfx = direction_suffix(k, d)
            shapes += [(f"weight_ih_{sfx}", (GH, in_size)), (f"weight_hh_{sfx}", (GH, H)),
                       (f"bias_ih_{sfx}", (GH,)), (f"bias_hh_{sfx}", (GH,))]
            shapes += [(f"{name}_{sfx}", (rows, H)) for name, rows in c.extra]
        in_size = D * H
    return shapes


def param_count(shapes):
    """Values in a [(name, shape)] layout."""
    return sum(math.prod(shape) for _, shape in shapes)


# Constraints of the spec's fields, checked when a spec is made (the estimators
# check their architecture parameters with the same ones).
FIELD_CONSTRAINTS = {
    "input_size": Int(1, MAX_WIDTH, none_ok=True),
    "vocab_size": Int(2, none_ok=True),
    "embedding_dim": Int(1, MAX_WIDTH, none_ok=True),
    "hidden_sizes": HiddenSizes(),
    "cell": Choice(CELLS),
    "activation": Choice(ACTIVATIONS),
    "gate_activation": Choice(GATE_ACTIVATIONS),
    "bidirectional": Bool(),
    "dropout": Real(0.0, 1.0, high_open=True),
    "n_outputs": Int(1, MAX_WIDTH),
    "sequence_output": Bool(),
    "dtype": DType(),
}


@dataclasses.dataclass(frozen=True)
class NetworkSpec:
    """The architecture of a network: (embedding) -> recurrent layers -> dense head.

    Exactly one of ``input_size`` (float features per step) and
    ``embedding_dim`` (token ids; then ``vocab_size`` rows) is set. Checked
    and normalised on creation; ValueError (TypeError for a wrong kind of
    value) names the field.
    """
    input_size: object
    hidden_sizes: tuple
    n_outputs: int
    cell: str = "lstm"
    activation: str = "tanh"
    gate_activation: str = "sigmoid"
    bidirectional: bool = False
    dropout: float = 0.0
    vocab_size: object = None
    embedding_dim: object = None
    sequence_output: bool = False
    dtype: str = "float32"

    def __post_init__(self):
        for name, constraint in FIELD_CONSTRAINTS.items():
            object.__setattr__(self, name, constraint.check(name, getattr(self, name)))
        if self.embedding_dim is None:
            if self.input_size is None:
                raise ValueError("input_size must be an int without embedding_dim, got None")
            if self.vocab_size is not None:
                raise ValueError("vocab_size is only used with embedding_dim")
        else:
            if self.vocab_size is None:
                raise ValueError("vocab_size must be an int >= 2 with embedding_dim, got None")
            if self.input_size is not None:
                raise ValueError("input_size must be None with embedding_dim")

    @property
    def num_directions(self):
        return 2 if self.bidirectional else 1

    @property
    def recurrent_input_size(self):
        """Features per step entering the first recurrent layer."""
        return self.input_size if self.embedding_dim is None else self.embedding_dim

    @property
    def feature_size(self):
        """F: features the head reads (the last layer's D * H)."""
        return self.num_directions * self.hidden_sizes[-1]

    def layer_param_shapes(self):
        return layer_param_shapes(self.cell, self.recurrent_input_size, self.hidden_sizes,
                                  self.bidirectional)

    def param_shapes(self):
        """[(name, shape)] of the network's flat parameter buffer, in order:
        ``embedding`` (with token ids), the recurrent layers' parameters
        (``layer_param_shapes``), ``head.weight`` (K, F), ``head.bias`` (K,).
        Computed from the spec alone, so a model file's array is checked
        against its config before anything is built."""
        shapes = []
        if self.embedding_dim is not None:
            shapes.append(("embedding", (self.vocab_size, self.embedding_dim)))
        shapes += self.layer_param_shapes()
        shapes += [("head.weight", (self.n_outputs, self.feature_size)),
                   ("head.bias", (self.n_outputs,))]
        return shapes

    def param_count(self):
        return param_count(self.param_shapes())

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)

    def to_json(self):
        """A plain JSON-able dict (the model file's ``network`` entry)."""
        out = dataclasses.asdict(self)
        out["hidden_sizes"] = list(self.hidden_sizes)
        return out

    @classmethod
    def from_json(cls, obj, partial=False):
        """The spec from ``to_json``'s dict; ValueError for anything else. With
        ``partial``, keys the dict lacks take their defaults (a file written
        before they existed)."""
        keys = {f.name for f in dataclasses.fields(cls)}
        required = {f.name for f in dataclasses.fields(cls)
                    if f.default is dataclasses.MISSING}
        ok = isinstance(obj, dict) and (set(obj) == keys if not partial
                                         else required <= set(obj) <= keys)
        if not ok:
            raise ValueError(f"network spec must have the keys {sorted(keys)}"
                             + (f" (at least {sorted(required)})" if partial else ""))
        obj = {f.name: f.default for f in dataclasses.fields(cls)
               if f.default is not dataclasses.MISSING} | obj
        if isinstance(obj["hidden_sizes"], (tuple, int)) or not isinstance(
                obj["dropout"], (int, float)) or isinstance(obj["dropout"], bool):
            raise ValueError("network spec: hidden_sizes must be a list and dropout a number")
        try:
            return cls(**obj)
        except TypeError as e:
            raise ValueError(str(e)) from None
