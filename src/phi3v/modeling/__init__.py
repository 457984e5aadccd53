from .configuration_phi3_v import Phi3VConfig
from .image_processing_phi3_v import Phi3VImageProcessor
from .modeling_phi3_v import Phi3VForCausalLM, Phi3VModel
from .processing_phi3_v import Phi3VProcessor
